"""Create models, ciphers and attacks by name (like timm's ``create_model``).

Models and attacks register their factories with ``@register(kind, name)`` in
their own package; the package is imported on first use, so ``create("model",
...)`` never needs the caller to import anything else. Ciphers are declared in
one place, ``shufflebits.ciphers.catalogue``, which this module reads: listing
them imports no cipher code, and ``available("cipher", **where)`` filters by
catalogue field (``format_preserving=True``, ``permutation="fixed"``...).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from .errors import ShuffleBitsError

_PROVIDERS = {
    "model": "shufflebits.models",
    "attack": "shufflebits.attacks",
}
_CATALOGUED = "cipher"
_FACTORIES: dict[str, dict[str, Callable[..., Any]]] = {kind: {} for kind in _PROVIDERS}
KINDS = (*_PROVIDERS, _CATALOGUED)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown registry kind {kind!r}; expected one of {sorted(KINDS)}")


def register(kind: str, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: make ``factory`` available as ``create(kind, name, ...)``."""
    _check_kind(kind)
    if kind == _CATALOGUED:
        raise ValueError("ciphers are not registered: add a CipherSpec to shufflebits.ciphers.catalogue")

    def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
        if name in _FACTORIES[kind] and _FACTORIES[kind][name] is not factory:
            raise ValueError(f"{kind} {name!r} is registered twice")
        _FACTORIES[kind][name] = factory
        return factory

    return decorator


def available(kind: str, **where: Any) -> list[str]:
    """Names that ``create(kind, ...)`` accepts; ciphers in catalogue order, filtered by ``where``."""
    _check_kind(kind)
    if kind == _CATALOGUED:
        from .ciphers.catalogue import cipher_names

        return list(cipher_names(**where))
    if where:
        raise ValueError(f"only ciphers can be filtered by field, not {kind}s")
    importlib.import_module(_PROVIDERS[kind])
    return sorted(_FACTORIES[kind])


def create(kind: str, name: str, /, **kwargs: Any) -> Any:
    """Build the ``kind`` registered (or, for ciphers, catalogued) as ``name`` with ``kwargs``."""
    if kind == _CATALOGUED:
        from .ciphers import create_cipher

        return create_cipher(name, **kwargs)
    names = available(kind)
    if name not in _FACTORIES[kind]:
        raise ShuffleBitsError(f"unknown {kind} {name!r}; available: {', '.join(names)}")
    return _FACTORIES[kind][name](**kwargs)


def create_model(name: str, /, pretrained: str | None = None, **kwargs: Any) -> Any:
    """Model ``name``; ``pretrained`` names a victim-zoo entry whose verified weights it loads (eval mode)."""
    if pretrained is None:
        return create("model", name, **kwargs)
    from .models.zoo import pretrained_model

    return pretrained_model(name, pretrained, **kwargs)


def create_cipher(name: str, /, **kwargs: Any) -> Any:
    return create(_CATALOGUED, name, **kwargs)


def create_attack(name: str, /, **kwargs: Any) -> Any:
    return create("attack", name, **kwargs)
