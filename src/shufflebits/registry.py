"""Create models, ciphers and attacks by name (like timm's ``create_model``).

Each family registers its factories with ``@register(kind, name)`` in its own
package; the package is imported on first use, so ``create("model", ...)``
never needs the caller to import anything else.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from .errors import ShuffleBitsError

_PROVIDERS = {
    "model": "shufflebits.models",
    "cipher": "shufflebits.ciphers",
    "attack": "shufflebits.attacks",
}
_FACTORIES: dict[str, dict[str, Callable[..., Any]]] = {kind: {} for kind in _PROVIDERS}


def register(kind: str, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: make ``factory`` available as ``create(kind, name, ...)``."""
    if kind not in _FACTORIES:
        raise ValueError(f"unknown registry kind {kind!r}; expected one of {sorted(_FACTORIES)}")

    def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
        if name in _FACTORIES[kind] and _FACTORIES[kind][name] is not factory:
            raise ValueError(f"{kind} {name!r} is registered twice")
        _FACTORIES[kind][name] = factory
        return factory

    return decorator


def available(kind: str) -> list[str]:
    """Names that ``create(kind, ...)`` accepts."""
    importlib.import_module(_PROVIDERS[kind])
    return sorted(_FACTORIES[kind])


def create(kind: str, name: str, /, **kwargs: Any) -> Any:
    """Build the ``kind`` registered as ``name`` with ``kwargs``."""
    names = available(kind)
    if name not in _FACTORIES[kind]:
        raise ShuffleBitsError(f"unknown {kind} {name!r}; available: {', '.join(names)}")
    return _FACTORIES[kind][name](**kwargs)


def create_model(name: str, /, **kwargs: Any) -> Any:
    return create("model", name, **kwargs)


def create_cipher(name: str, /, **kwargs: Any) -> Any:
    return create("cipher", name, **kwargs)


def create_attack(name: str, /, **kwargs: Any) -> Any:
    return create("attack", name, **kwargs)
