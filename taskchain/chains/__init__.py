"""The chain-type registry. Every module in this package that registers a type is found."""

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
        _plugins_loaded.add(name)


def all_types(*, plugins: bool = True) -> dict[str, type[ChainType]]:
    """Registered types; `plugins=False` reads no settings (for help text at import time)."""
    _load_builtin()
    if plugins:
        _load_plugins()
    return dict(sorted(_registry.items()))


def get_type(name: str) -> type[ChainType]:
    if not _builtin_loaded and name not in _registry:
        _load_named(name)
    # Plug-ins may replace a built-in type, so with any configured, look at every type.
    if name in _registry and not _plugin_names():
        return _registry[name]
    types = all_types()
    if name not in types:
        raise InvalidInput(f"unknown chain type {name!r} (known: {', '.join(types)})")
    return types[name]
