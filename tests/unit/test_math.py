from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskchain.chains import StepContext, StepPlan, get_type
from taskchain.chains.math import MAX_DIGITS, MAX_STEPS, apply
from taskchain.errors import InvalidInput, StepError

MATH = get_type("math_chain")


def fold(config: dict) -> int:
    """Run every planned step in order, as the worker would."""
    parsed = MATH.parse(config)
    MATH.check(parsed, None)
    value = None
    for i, step in enumerate(MATH.plan(parsed)):
        ctx = StepContext(chain_id="c", index=i, step_count=0, workspace=None)  # type: ignore[arg-type]
        value = MATH.run_step(parsed, step, value, ctx)
    assert isinstance(value, int)
    return value


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"numbers": [1, 2, 3]}, 6),
        ({"numbers": ["1", "2", "3"]}, 6),
        ({"numbers": [10, 3, 2], "operation": "subtract"}, 5),
        ({"numbers": [2, 3, 4], "operation": "multiply"}, 24),
        ({"numbers": [7, 2], "operation": "divide"}, 3),
        ({"numbers": [-7, 2], "operation": "divide"}, -4),
        ({"numbers": [7, -3], "operation": "modulo"}, -2),
        ({"numbers": [2, 3, 2], "operation": "power"}, 64),
        ({"numbers": [1, 2, 3], "iterations": 2}, 12),
        ({"numbers": [5], "iterations": 3}, 15),
        ({"numbers": [2, 2], "operation": "*", "iterations": 3}, 64),
        ({"numbers": [10**30, 10**30], "operation": "multiply"}, 10**60),
        ({"numbers": [2, 100], "operation": "pow"}, 2**100),
        ({"numbers": [-2, 3], "operation": "power"}, -8),  # only the first base may be negative
        ({"numbers": [-1, 3, 2], "operation": "**"}, 1),
        ({"numbers": ["9" * MAX_DIGITS, 0]}, 10**MAX_DIGITS - 1),  # the largest allowed
        ({"numbers": ["5" * MAX_DIGITS, "4" * MAX_DIGITS]}, 10**MAX_DIGITS - 1),
        ({"numbers": [10, MAX_DIGITS - 1], "operation": "power"}, 10 ** (MAX_DIGITS - 1)),
    ],
)
def test_fold(config: dict, expected: int) -> None:
    assert fold(config) == expected


def test_plan_is_one_step_per_operation() -> None:
    plan = MATH.plan(MATH.parse({"numbers": [1, 2, 3], "iterations": 2}))
    assert [s.name for s in plan] == ["add 2", "add 3", "add 1", "add 2", "add 3"]
    assert plan[0].params == {"op": "add", "operand": 2, "initial": 1}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"numbers": []}, "at least 1 item"),
        ({"numbers": [1]}, "need at least two operands"),
        ({"numbers": [1, 1.5]}, "1.5 is not an integer"),
        ({"numbers": ["nan", 1]}, "'nan' is not an integer"),
        ({"numbers": ["inf", 1]}, "'inf' is not an integer"),
        ({"numbers": [True, 1]}, "True is not an integer"),
        ({"numbers": [1, 2], "operation": "root"}, "operation"),
        ({"numbers": [1, 2], "iterations": 0}, "iterations"),
        ({"numbers": [1, 2], "iterations": "3"}, "iterations"),
        ({"numbers": [1, 2], "iterations": MAX_STEPS}, "the limit is"),
        ({"numbers": ["9" * (MAX_DIGITS + 1), 1]}, "limited to"),
        ({"numbers": [10**MAX_DIGITS, 1]}, "limited to"),
        ({"numbers": [-(10**MAX_DIGITS), 1]}, "limited to"),
        (
            {"numbers": [2, -1], "operation": "power"},
            "power with negative exponent -1 (numbers[1]) has no integer result",
        ),
        ({"numbers": [2, 3, -2], "operation": "**"}, "negative exponent -2 (numbers[2])"),
        # Repeated, the first number is an exponent too: 3 ** 2 ** -1 ** 3 ** 2.
        (
            {"numbers": [-1, 3, 2], "operation": "power", "iterations": 2},
            "exponent -1 (numbers[0])",
        ),
        ({"numbers": [1, 2], "colour": "red"}, "colour"),
        ({}, "numbers"),
    ],
)
def test_invalid_configs(config: dict, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        MATH.parse(config)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_power_tower_refused_at_submit() -> None:
    config = MATH.parse({"numbers": [10, 10, 10, 10, 10], "operation": "power"})
    with pytest.raises(InvalidInput, match=f"would exceed {MAX_DIGITS} digits"):
        MATH.check(config, None)


@pytest.mark.parametrize(
    ("numbers", "message"),
    [
        (["9" * MAX_DIGITS, 1], "result of add would exceed 4000 digits"),
        ([10, MAX_DIGITS], "result of power would exceed 4000 digits"),
    ],
)
def test_one_digit_past_the_limit_is_refused_at_submit(numbers: list, message: str) -> None:
    config = MATH.parse({"numbers": numbers, "operation": "power" if numbers[0] == 10 else "add"})
    with pytest.raises(InvalidInput, match=message):
        MATH.check(config, None)


@given(
    st.lists(st.integers(min_value=-2, max_value=2), min_size=1, max_size=3),
    st.integers(min_value=1, max_value=2),
)
def test_power_accepts_exactly_the_configs_without_a_negative_exponent(
    numbers: list[int], iterations: int
) -> None:
    sequence = numbers * iterations
    config = {"numbers": numbers, "operation": "power", "iterations": iterations}
    if len(sequence) < 2:
        return
    if any(n < 0 for n in sequence[1:]):
        with pytest.raises(InvalidInput, match="negative exponent"):
            MATH.parse(config)
    else:
        assert fold(config) == _power_fold(sequence)


def _power_fold(sequence: list[int]) -> int:
    acc = sequence[0]
    for exponent in sequence[1:]:
        acc = acc**exponent
    return acc


def test_division_by_zero_is_a_step_error_not_a_submit_error() -> None:
    config = MATH.parse({"numbers": [1, 0], "operation": "divide"})
    MATH.check(config, None)  # refused only when the step runs
    with pytest.raises(StepError, match="division by zero"):
        apply("divide", 1, 0)


@pytest.mark.parametrize(("op", "acc", "operand"), [("power", 2, -1), ("modulo", 3, 0)])
def test_apply_refusals(op: str, acc: int, operand: int) -> None:
    with pytest.raises(StepError):
        apply(op, acc, operand)


def test_run_step_rejects_non_integer_input() -> None:
    config = MATH.parse({"numbers": [1, 2, 3]})
    ctx = StepContext(chain_id="c", index=1, step_count=2, workspace=None)  # type: ignore[arg-type]
    with pytest.raises(StepError, match="expected an integer"):
        MATH.run_step(config, StepPlan("add 3", {"op": "add", "operand": 3}), "x", ctx)


@given(st.lists(st.integers(min_value=-(10**20), max_value=10**20), min_size=2, max_size=20))
def test_add_fold_matches_sum(numbers: list[int]) -> None:
    assert fold({"numbers": numbers}) == sum(numbers)


@given(st.lists(st.one_of(st.floats(allow_nan=True), st.text(max_size=5)), min_size=2, max_size=5))
def test_validator_never_accepts_non_integers(values: list[object]) -> None:
    def integral(v: object) -> bool:
        return isinstance(v, str) and v.strip().lstrip("+-").isdigit() and v.strip().isascii()

    try:
        parsed = MATH.parse({"numbers": values})
    except InvalidInput:
        assert not all(integral(v) for v in values)
    else:
        assert all(isinstance(n, int) for n in parsed.numbers)  # type: ignore[attr-defined]
        assert all(integral(v) for v in values)
