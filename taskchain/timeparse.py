"""Durations (`90s`, `5m`, `1h30m`) and points in time (ISO-8601 or `2h` ago)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from taskchain.errors import InvalidInput

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str, *, option: str = "duration") -> float:
    """Seconds in `text`: a bare number of seconds or parts like `1h30m`, `90s`, `250ms`."""
    raw = text.strip().lower()
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
        if raw and _PART.sub("", raw) == "":
            value = sum(float(n) * _UNITS[u] for n, u in _PART.findall(raw))
    else:
        if value != value or value in (float("inf"), float("-inf")):
            value = -1.0
    if value < 0:
        raise InvalidInput(f"{option} {text!r} is not a duration (try 90, 90s, 5m, 1h30m)")
    return value


def parse_time(text: str, *, option: str = "time", now: datetime | None = None) -> datetime:
    """An aware UTC time from ISO-8601 (naive = UTC) or a relative age such as `2h`, `3d`."""
    raw = text.strip()
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        try:
            age = parse_duration(raw, option=option)
        except InvalidInput:
            raise InvalidInput(
                f"{option} {text!r} is neither an ISO-8601 time nor an age like 2h or 3d"
            ) from None
        try:
            return (now or datetime.now(UTC)) - timedelta(seconds=age)
        except OverflowError:
            raise InvalidInput(f"{option} {text!r} is too far in the past") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def iso(moment: datetime | None) -> str | None:
    """ISO-8601 UTC with a Z, to the millisecond."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
