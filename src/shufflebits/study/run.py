"""The whole study in one call: victim, leakage matrix, re-ID after decryption, throughput, report.

A stage that fails (a missing piece, a bad input) is recorded with its error
and shown in the report; the stages that do not depend on it still run, so one
broken part never hides the others' results. No figure is ever filled in by hand.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

from ..atomic import atomic_write_text
from ..attacks.types import LeakageResult
from .cache import cached_stage, code_version
from .pipeline import VictimData, check_inputs, prepare_victim, study_seeds
from .profiles import Profile, get_profile

CMC_RANKS = (1, 5, 10)


@dataclass
class StudyResult:
    """The figures (as written to ``results.json``) and where the report is."""

    results: dict
    index_html: Path
    results_json: Path
    failures: dict[str, str] = field(default_factory=dict)


class _StudyStages:
    """Runs stages in order, timing each and recording (not raising) failures."""

    def __init__(self, out_dir: Path, progress: bool):
        self.out_dir = out_dir
        self.progress = progress
        self.timings: dict[str, float] = {}
        self.failures: dict[str, str] = {}

    def log(self, message: str) -> None:
        if self.progress:
            tqdm.write(f"[study] {message}", file=sys.stderr)

    def run(self, name: str, work: Callable[[], Any]) -> Any:
        """``work()``, or ``None`` when it raised; the error goes to the report and ``logs/``."""
        self.log(f"stage {name} ...")
        start = time.perf_counter()
        try:
            return work()
        except Exception as error:  # one stage's failure must not hide the others' results
            message = f"{type(error).__name__}: {error}".splitlines()[0]
            self.failures[name] = message
            logs = self.out_dir / "logs"
            logs.mkdir(exist_ok=True)
            atomic_write_text(logs / f"{name}.log", traceback.format_exc())
            self.log(f"stage {name} FAILED: {message} (traceback in logs/{name}.log)")
            return None
        finally:
            self.timings[name] = time.perf_counter() - start

    def skip(self, name: str, reason: str) -> None:
        self.failures[name] = f"skipped: {reason}"
        self.log(f"stage {name} skipped: {reason}")


def _leakage(victim: VictimData, profile: Profile, out_dir: Path, seed: int, device: str, progress: bool) -> tuple[LeakageResult, bool]:
    """The leakage matrix (cached by the features' key), and whether it came from the cache."""
    from ..attacks.leakage import leakage_matrix, read_leakage, write_leakage

    inputs = {
        "features": victim.key,
        "attacks": profile.attacks,
        "seed": seed,
        "device": device,
        "code": code_version("attacks", "ciphers"),
    }

    def build(folder: Path) -> None:
        result = leakage_matrix(
            victim.attacker,
            victim.user_query,
            victim.user_gallery,
            victim.embed,
            profile=profile.attacks,
            seed=seed,
            device=device,
            progress=progress,
        )
        write_leakage(result, folder)

    folder, was_cached = cached_stage(out_dir / "cache", "leakage", inputs, build)
    result = read_leakage(folder)
    write_leakage(result, out_dir)
    return result, was_cached


def _reid_figures(evaluate, query, gallery, qf: np.ndarray, gf: np.ndarray) -> dict:
    scores = evaluate(qf, gf, query.pids, gallery.pids, query.camids, gallery.camids)
    cmc = np.asarray(scores["cmc"], dtype=np.float64)
    figures = {"mAP": float(scores["mAP"])}
    if "mINP" in scores:
        figures["mINP"] = float(scores["mINP"])
    for rank in CMC_RANKS:
        if rank <= len(cmc):
            figures[f"rank{rank}"] = float(cmc[rank - 1])
    return figures


def _bit_exact(plain: np.ndarray, decrypted: np.ndarray) -> bool:
    """Same shape, dtype and bits (float equality would miss -0.0 and NaN payloads)."""
    if plain.shape != decrypted.shape or plain.dtype != decrypted.dtype:
        return False
    return bool(np.array_equal(plain.view(np.uint8), np.ascontiguousarray(decrypted).view(np.uint8)))


def _reid(victim: VictimData) -> dict:
    """Victim re-ID on plaintext, then on features encrypted and decrypted by every cipher."""
    from ..ciphers import CIPHERS
    from ..registry import create_cipher
    from ..reid import evaluate

    query, gallery = victim.user_query, victim.user_gallery
    plaintext = _reid_figures(evaluate, query, gallery, query.features, gallery.features)
    decrypted = {}
    for name in CIPHERS:
        cipher = create_cipher(name)
        qd = cipher.decrypt(cipher.encrypt(query.features))
        gd = cipher.decrypt(cipher.encrypt(gallery.features))
        figures = _reid_figures(evaluate, query, gallery, qd, gd)
        decrypted[name] = {
            **figures,
            "bit_exact": _bit_exact(query.features, qd) and _bit_exact(gallery.features, gd),
            "same_figures": figures == plaintext,
        }
    return {"plaintext": plaintext, "decrypted": decrypted, "n_query": len(query), "n_gallery": len(gallery)}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(profile: Profile, seed: int, device: str, argv: list[str] | None) -> dict:
    """Versions, hardware and settings a reader needs to reproduce the figures."""
    import numba
    import sklearn
    import torch

    import shufflebits

    return {
        "command": " ".join(argv) if argv else None,
        "shufflebits": shufflebits.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "numba": numba.__version__,
        "scikit-learn": sklearn.__version__,
        "cpu": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "cuda": torch.cuda.get_device_name(0) if device.startswith("cuda") and torch.cuda.is_available() else None,
        "seeds": study_seeds(seed),
        "profile": profile.as_dict(),
        "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }


def run_study(
    profile: str | Profile,
    out_dir: str | Path,
    victim: str | None = None,
    weights: str | Path | None = None,
    device: str = "cpu",
    dataset: str | None = None,
    root: str | Path | None = None,
    via_http: bool = False,
    seed: int = 0,
    progress: bool = True,
    attributes: str | Path | None = None,
    argv: list[str] | None = None,
) -> StudyResult:
    """Run every stage into ``out_dir`` and write ``index.html`` and ``results.json`` there.

    ``argv`` is the command line to record in the report (the CLI passes it).
    """
    from .report import build_figures, write_report

    profile = get_profile(profile)
    check_inputs(victim, weights, dataset, root, attributes, device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stages = _StudyStages(out_dir, progress)
    env = environment(profile, seed, device, argv)
    wall_start = time.perf_counter()

    victim_data: VictimData | None = stages.run(
        "victim",
        lambda: prepare_victim(
            profile, out_dir, victim=victim, weights=weights, device=device, dataset=dataset,
            root=root, via_http=via_http, seed=seed, progress=progress, attributes=attributes,
        ),
    )
    leakage, reid, cached = None, None, []
    if victim_data is None:
        for name in ("leakage", "reid"):
            stages.skip(name, "the victim stage failed")
    else:
        with victim_data:
            outcome = stages.run("leakage", lambda: _leakage(victim_data, profile, out_dir, seed, device, progress))
            if outcome is not None:
                leakage, leakage_cached = outcome
                cached = victim_data.cached + (["leakage"] if leakage_cached else [])
            reid = stages.run("reid", lambda: _reid(victim_data))

    def benchmark() -> list[dict]:
        from ..ciphers.bench import run_benchmark

        return run_benchmark(size_mib=profile.bench_mib, progress=progress)

    throughput = stages.run("throughput", benchmark)

    timings = {}
    for name, seconds in stages.timings.items():
        if name == "victim" and victim_data is not None:
            timings.update({f"victim/{sub}": value for sub, value in victim_data.timings.items()})
        timings[name] = seconds
    results = {
        "profile": profile.name,
        "victim": None if victim_data is None else {
            "model": victim_data.victim,
            "dataset": victim_data.dataset,
            "black_box": victim_data.black_box,
            "n_attacker": len(victim_data.attacker),
            "n_user_query": len(victim_data.user_query),
            "n_user_gallery": len(victim_data.user_gallery),
            "feature_dim": int(victim_data.attacker.features.shape[1]),
            "zero_fraction": float(np.mean(victim_data.user_query.features == 0)),
            "cached_stages": victim_data.cached,
            "epochs_trained": None if victim_data.history is None else len(victim_data.history),
        },
        "training_history": None if victim_data is None else victim_data.history,
        "leakage": None if leakage is None else [row.as_dict() for row in leakage.rows],
        "reid": reid,
        "throughput": throughput,
        "timings": timings,
        "cached_stages": cached,
        "failures": stages.failures,
        "environment": env,
    }
    report_start = time.perf_counter()
    figures = build_figures(results, {} if leakage is None else leakage.grids)
    timings["report"] = time.perf_counter() - report_start
    timings["total"] = time.perf_counter() - wall_start
    index_html, results_json = write_report(results, figures, out_dir)
    return StudyResult(results, index_html, results_json, stages.failures)
