"""The chain-type registry. Every module in this package that registers a type is found.

Types from elsewhere come from two places: modules named in TASKCHAIN_PLUGINS, and installed
packages that declare an entry point in the group `taskchain.chains` (`pip install
taskchain-foo` adds a type without a setting). Entry points are scanned lazily, only when a
name is not a built-in type or every type is listed: scanning the installed packages costs
milliseconds that `--help` and the read commands must not pay.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TypeVar

from taskchain.chains.base import ChainType, StepContext, StepPlan
from taskchain.errors import InvalidInput

__all__ = ["ChainType", "StepContext", "StepPlan", "all_types", "get_type", "register"]

_registry: dict[str, type[ChainType]] = {}
_builtin_loaded = False
_plugins_loaded: set[str] = set()
_entry_points_loaded = False
#: The entry-point group an installed package declares its chain types in.
ENTRY_POINT_GROUP = "taskchain.chains"
T = TypeVar("T", bound=type[ChainType])


def register(cls: T) -> T:
    if cls.queue == "celery":
        # The default family's name before taskchain had queues of its own; the queue itself
        # is named by the engine (prefix + family), never Celery's shared `celery`.
        cls.queue = "default"
    _registry[cls.name] = cls
    return cls


def _load_builtin() -> None:
    global _builtin_loaded
    if not _builtin_loaded:
        import pkgutil

        for module in pkgutil.iter_modules(__path__):
            if module.name != "base" and not module.name.startswith("_"):
                importlib.import_module(f"{__name__}.{module.name}")
        _builtin_loaded = True


def _load_named(type_name: str) -> None:
    """Only the built-in module a type is named after (math_chain: chains/math.py), if there
    is one: a command that needs one type does not build every type's config models."""
    stem = type_name.removesuffix("_chain")
    if stem == type_name or not stem.isidentifier() or stem.startswith("_") or stem == "base":
        return
    if importlib.util.find_spec(f"{__name__}.{stem}") is not None:
        importlib.import_module(f"{__name__}.{stem}")


def _plugin_names() -> list[str]:
    from taskchain.settings import get_settings

    return list(filter(None, (p.strip() for p in get_settings().plugins.split(","))))


def _load_plugins() -> None:
    """Modules named in TASKCHAIN_PLUGINS, for chain types that live outside this package."""
    for name in _plugin_names():
        if name in _plugins_loaded:
            continue
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise InvalidInput(f"TASKCHAIN_PLUGINS: cannot import {name!r}: {exc}") from exc
        except Exception as exc:  # any error of the plug-in's own: one line, no traceback
            raise InvalidInput(
                f"TASKCHAIN_PLUGINS: plug-in {name!r} failed to load: {_describe(exc)}"
            ) from exc
        _plugins_loaded.add(name)


def _load_entry_points() -> None:
    """The chain types of installed packages (entry-point group `taskchain.chains`). Each
    entry point names a module that registers its types when imported, or a ChainType class.
    They add types: one that would replace a type already known is refused (a package
    installed for something else must not change what `math_chain` does silently)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    from importlib.metadata import entry_points

    for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda p: p.name):
        before = dict(_registry)
        where = f"plug-in {point.name!r} ({point.value}, entry point {ENTRY_POINT_GROUP})"
        try:
            loaded = point.load()
            is_type = isinstance(loaded, type) and issubclass(loaded, ChainType)
            if is_type and _registry.get(loaded.name) is not loaded:
                register(loaded)
        except Exception as exc:  # ImportError or any error of its own: one line
            _registry.clear()
            _registry.update(before)
            raise InvalidInput(f"{where} failed to load: {_describe(exc)}") from exc
        replaced = [n for n, cls in before.items() if _registry[n] is not cls]
        if replaced:
            _registry.update(before)
            raise InvalidInput(
                f"{where} redefines the chain type {replaced[0]!r}; a plug-in adds types "
                "(TASKCHAIN_PLUGINS may replace one)"
            )
    _entry_points_loaded = True


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def all_types(*, plugins: bool = True) -> dict[str, type[ChainType]]:
    """Registered types; `plugins=False` reads no settings and scans no installed packages
    (for help text at import time)."""
    _load_builtin()
    if plugins:
        _load_plugins()
        _load_entry_points()
    return dict(sorted(_registry.items()))


def get_type(name: str) -> type[ChainType]:
    if not _builtin_loaded and name not in _registry:
        _load_named(name)
    # TASKCHAIN_PLUGINS may replace a built-in type, so load them before looking.
    if _plugin_names():
        _load_plugins()
    if name in _registry:
        return _registry[name]
    types = all_types()
    if name not in types:
        raise InvalidInput(f"unknown chain type {name!r} (known: {', '.join(types)})")
    return types[name]
