"""The one settings object, from `TASKCHAIN_*` variables and the CLI's global options.

Every setting is checked when the object is first built, before any command records or sends
anything: a bad value is `InvalidSetting` (exit 2) naming the variable or option it came from.
Whether a service answers is not checked here (that is exit 4, where it is used).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskchain.errors import InvalidInput

if TYPE_CHECKING:
    from pydantic import ValidationError

    from taskchain._settings_model import Settings

# The model (pydantic-settings, ~0.1 s to import) lives in _settings_model and is loaded on
# first use: `taskchain --help` and `--version` only call `configure`, which needs none of it.
_MODEL_NAMES = frozenset({"Settings", "BROKER_SCHEMES", "RESULT_SCHEMES", "DAY"})


def __getattr__(name: str) -> Any:
    if name in _MODEL_NAMES:
        from taskchain import _settings_model

        return getattr(_settings_model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class InvalidSetting(InvalidInput):
    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"invalid setting {source}: {problem}")
        self.source = source


def default_database_path() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("taskchain", appauthor=False)) / "taskchain.db"


_overrides: dict[str, Any] = {}


def configure(**overrides: Any) -> None:
    """Apply the CLI's global options (they beat the environment) and forget cached state."""
    _overrides.clear()
    _overrides.update({k: v for k, v in overrides.items() if v is not None})
    get_settings.cache_clear()


@cache
def get_settings() -> Settings:
    """The settings, checked as a whole; InvalidSetting (exit 2) for the first bad one."""
    from pydantic import ValidationError

    from taskchain._settings_model import Settings

    try:
        return Settings(**_overrides)
    except ValidationError as exc:
        raise _describe(exc) from None


# Their messages name the value themselves (URLs masked); other values are shown as given.
_SELF_NAMING = frozenset(
    {"broker_url", "result_backend", "database_url", "workspace", "plugins", "queue_prefix"}
)


def _describe(exc: ValidationError) -> InvalidSetting:
    first = exc.errors(include_url=False)[0]
    field = str(first["loc"][0]) if first.get("loc") else ""
    # Name the setting as the user gave it: the option beats the variable.
    source = "--" + field.replace("_", "-") if field in _overrides else f"TASKCHAIN_{field.upper()}"
    problem = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    given = first.get("input")
    numeric = isinstance(given, str | int | float) and not isinstance(given, bool)
    if numeric and field not in _SELF_NAMING:
        problem += f" (got {given!r})"
    more = len(exc.errors()) - 1
    if more:
        problem += f" (and {more} more problem{'s' if more > 1 else ''})"
    return InvalidSetting(source, problem)


def mask_url(url: str | None) -> str:
    """The URL with any password replaced by ***, safe to print (also in a URL that does not
    parse, and in every part of a multi-host sentinel URL)."""
    if not url:
        return ""
    return _PASSWORD.sub(r"\1:***@", url)


# `scheme://user:password@`: the password runs to the last `@` before the path.
_PASSWORD = re.compile(r"(://[^:/@;?#]*):[^/;?#]*@")
