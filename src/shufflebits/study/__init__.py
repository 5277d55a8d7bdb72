"""The one-command study: cached stages from nothing to a self-contained HTML report.

``prepare_victim`` builds (or loads) the worlds, the victim and its black box
and returns what an attacker holds; ``run_study`` adds the leakage matrix, re-ID
after decryption, cipher throughput and the report. Both are imported lazily
so ``import shufflebits.study`` stays cheap.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "Profile": "shufflebits.study.profiles",
    "PROFILES": "shufflebits.study.profiles",
    "get_profile": "shufflebits.study.profiles",
    "VictimData": "shufflebits.study.pipeline",
    "prepare_victim": "shufflebits.study.pipeline",
    "StudyResult": "shufflebits.study.run",
    "run_study": "shufflebits.study.run",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'shufflebits.study' has no attribute {name!r}")
