"""Property tests: whatever text a user types, the parsers answer with a value or InvalidInput."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from taskchain.chains import get_type
from taskchain.cli.config_input import load_config_text
from taskchain.errors import InvalidInput
from taskchain.timeparse import parse_duration, parse_time

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(st.text(max_size=200))
def test_config_text_is_a_mapping_or_invalid_input(text: str) -> None:
    try:
        value = load_config_text(text, source="--config")
    except InvalidInput as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(value, dict)


@given(st.text(max_size=30))
def test_durations_are_finite_non_negative_or_refused(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except InvalidInput:
        return
    assert math.isfinite(seconds) and seconds >= 0


@given(st.text(max_size=30))
def test_times_are_aware_or_refused(text: str) -> None:
    try:
        moment = parse_time(text)
    except InvalidInput:
        return
    assert moment.tzinfo is not None


@settings(max_examples=200)
@given(
    st.sampled_from(["math_chain", "data_chain", "io_chain"]),
    st.dictionaries(st.text(max_size=20), JSONISH, max_size=4),
)
def test_every_type_validates_any_mapping_with_one_line(type_name: str, raw: dict) -> None:
    try:
        get_type(type_name).parse(raw)
    except InvalidInput as exc:
        assert "\n" not in str(exc)
