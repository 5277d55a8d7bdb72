"""How busy the machine was while a figure was measured: load average and CPU count.

Wall times and throughput on a shared machine say little without the load:
a stage that ran while other processes wanted more CPUs than exist took longer
than it would alone, so such figures are flagged in ``results.json`` and the report.
"""

from __future__ import annotations

import os


def load_sample() -> dict:
    """The 1-minute load average and the number of CPUs, now."""
    return {"load_1min": round(os.getloadavg()[0], 2), "cpu_count": os.cpu_count() or 1}


def busiest(*samples: dict) -> dict:
    """The sample with the highest load (a stage's start and end): the worst the stage ran under."""
    return max(samples, key=lambda sample: sample["load_1min"])


def overloaded(sample: dict | None) -> bool:
    """True when more work wanted the CPUs than there are cores (load average above the CPU count)."""
    return bool(sample) and sample.get("load_1min") is not None and sample["load_1min"] > sample["cpu_count"]


def load_text(sample: dict | None) -> str:
    """``load 2.6 on 2 CPUs (busy)`` for a report or log line; ``–`` when unknown."""
    if not sample or sample.get("load_1min") is None:
        return "–"
    busy = " (load above the CPU count: slower than alone)" if overloaded(sample) else ""
    return f"load {sample['load_1min']:.1f} on {sample['cpu_count']} CPUs{busy}"
