"""The one-command study: declared, cached stages from nothing to a self-contained HTML report.

A ``StudyConfig`` (``StudyConfig.from_profile("quick", seed=0)``) says what to
run; ``prepare_victim(config, out_dir)`` builds (or loads) the worlds, the
victim and its black box and returns what an attacker holds; ``run_attack``
adds the leakage matrix, ``run_study`` re-ID after decryption, cipher
throughput and the report. Everything is imported lazily so
``import shufflebits.study`` stays cheap.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "Profile": "shufflebits.study.profiles",
    "PROFILES": "shufflebits.study.profiles",
    "get_profile": "shufflebits.study.profiles",
    "StudyConfig": "shufflebits.study.config",
    "ConfigError": "shufflebits.study.config",
    "VictimData": "shufflebits.study.victim",
    "prepare_victim": "shufflebits.study.victim",
    "StudyResult": "shufflebits.study.run",
    "run_attack": "shufflebits.study.run",
    "run_study": "shufflebits.study.run",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'shufflebits.study' has no attribute {name!r}")
