"""The black box: images in, features (or their ciphertext) out; in-process or over HTTP.

``InProcessBlackBox`` wraps a feature extractor; ``create_app`` serves one over
HTTP with token auth and ``HttpBlackBox`` is its client. Names are imported
lazily so the client does not pull in FastAPI, nor the server httpx.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "BlackBox": "shufflebits.service.blackbox",
    "InProcessBlackBox": "shufflebits.service.blackbox",
    "HttpBlackBox": "shufflebits.service.client",
    "create_app": "shufflebits.service.app",
    "BackgroundServer": "shufflebits.service.server",
    "serve": "shufflebits.service.server",
    "decode_answer": "shufflebits.service.wire",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'shufflebits.service' has no attribute {name!r}")
