"""The whole study in one call: victim, leakage matrix, re-ID after decryption, throughput and cost, report.

A stage that fails (a missing piece, a bad input) is recorded with its error
and shown in the report; the stages that do not depend on it still run, so one
broken part never hides the others' results. No figure is ever filled in by hand.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_bytes
from ..attacks.types import LeakageResult
from ..reid.metrics import matches_per_query
from .config import StudyConfig, checked
from .load import busiest, load_sample, overloaded
from .realism import realism_stages
from .stages import RUNNER_FILES, Stage, StageContext, StageRunner
from .transfer import STAGE as TRANSFER
from .transfer import transfer_stages
from .victim import FEATURES, VictimData, close_black_box, victim_stages

CMC_RANKS = (1, 5, 10)
CONSISTENCY = "consistency"  # the decoder variant that trains through the attacker's copy of the victim


@dataclass
class StudyResult:
    """The figures (as written to ``results.json``) and where the report is."""

    results: dict
    index_html: Path
    results_json: Path
    failures: dict[str, str] = field(default_factory=dict)


def _leakage_matrix(context: StageContext) -> LeakageResult:
    from ..attacks.leakage import leakage_matrix
    from ..attacks.leakage_files import write_leakage

    victim, config = context.values[FEATURES], context.config
    result = leakage_matrix(
        victim.attacker,
        victim.user_query,
        victim.user_gallery,
        victim.embed,
        profile=config.profile.attacks,
        seed=config.seeds["attacks"],
        device=config.device,
        progress=config.progress,
        transfer=context.values.get(TRANSFER),
        feature_model=_attacker_copy(context),
    )
    write_leakage(result, context.folder)
    return result


def _attacker_copy(context: StageContext):
    """The attacker's own differentiable copy of the victim (its weights are public: the zoo ships them).

    Only the ``consistency`` decoder uses it; an ONNX victim gives none (not
    differentiable), and the decoder then distils a surrogate from queries.
    """
    import copy

    from torch import nn

    from ..models.extractor import TorchExtractor

    if CONSISTENCY not in context.config.profile.attacks.recon_variants:
        return None
    extractor = context.values["load_victim"].extractor
    if not isinstance(extractor, TorchExtractor):
        return None

    class AttackerCopy(nn.Module):
        def __init__(self):
            super().__init__()
            self.extractor = copy.deepcopy(extractor)
            self.model = self.extractor.model  # registered, so eval() and requires_grad_() reach it

        def forward(self, images):
            return self.extractor.embed_tensor(images)

    return AttackerCopy()


def _published_leakage(context: StageContext) -> LeakageResult:
    """The matrix in memory (read back only from a cached folder); its files copied beside the report."""
    from ..attacks.leakage_files import read_leakage

    for path in sorted(context.folder.iterdir()):
        if path.name not in RUNNER_FILES:
            atomic_write_bytes(context.out_dir / path.name, path.read_bytes())
    return context.built if context.built is not None else read_leakage(context.folder)


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
    """Victim re-ID on plaintext, then on features encrypted and decrypted by every invertible cipher.

    (Re-ID on the ciphertexts of the matchable ciphers is in the leakage rows, ``reid_*_ciphertext``.)
    """
    from ..ciphers.catalogue import cipher_names
    from ..registry import create_cipher
    from ..reid import evaluate

    query, gallery = victim.user_query, victim.user_gallery
    plaintext = _reid_figures(evaluate, query, gallery, query.features, gallery.features)
    decrypted = {}
    for name in cipher_names(invertible=True, homomorphic=False):
        cipher = create_cipher(name)
        qd = cipher.decrypt(cipher.encrypt(query.features))
        gd = cipher.decrypt(cipher.encrypt(gallery.features))
        figures = _reid_figures(evaluate, query, gallery, qd, gd)
        decrypted[name] = {
            **figures,
            "bit_exact": _bit_exact(query.features, qd) and _bit_exact(gallery.features, gd),
            "same_figures": figures == plaintext,
        }
    return {
        "plaintext": plaintext,
        "decrypted": decrypted,
        "n_query": len(query),
        "n_gallery": len(gallery),
        "matches_per_query": matches_per_query(query.pids, gallery.pids, query.camids, gallery.camids),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(config: StudyConfig, command: str | None) -> dict:
    """Versions, hardware and settings a reader needs to reproduce the figures."""
    import numba
    import sklearn
    import torch

    import shufflebits

    return {
        "command": command,
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
        "device": config.device,
        "cuda": torch.cuda.get_device_name(0)
        if config.device.startswith("cuda") and torch.cuda.is_available()
        else None,
        "seeds": config.seeds,
        "profile": config.profile.as_dict(),
        "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }


def _benchmark(context: StageContext) -> list[dict]:
    from ..ciphers.bench import run_benchmark

    rows = run_benchmark(size_mib=context.config.profile.bench_mib, progress=False)  # the summary prints each row
    cpus = os.cpu_count()
    return [
        {**row, "cpu_count": cpus, "overloaded": overloaded({"load_1min": row["load_average"], "cpu_count": cpus})}
        for row in rows
    ]


def _cost(context: StageContext) -> list[dict]:
    """What each cipher costs (``ciphers.cost``) at the profile's gallery size, timed with no HTTP service running."""
    from ..ciphers.cost import cost_rows

    profile = context.config.profile
    rows = cost_rows(gallery=profile.cost_gallery, repeats=profile.cost_repeats)
    return [
        {**row, "overloaded": overloaded({"load_1min": row["load_average"], "cpu_count": row["cpu_count"]})}
        for row in rows
    ]


def _frontier(context: StageContext) -> dict:
    """The parameter sweep of the searchable schemes (``study.frontier``) on this run's features."""
    from .frontier import frontier_sweep

    victim, config = context.values[FEATURES], context.config
    return frontier_sweep(
        victim.attacker,
        victim.user_query,
        victim.user_gallery,
        config.profile.attacks,
        seed=config.seeds["attacks"],
        device=config.device,
    )


def study_stages(config: StudyConfig) -> list[Stage]:
    """The whole study's graph: the victim's stages, then the leakage matrix, re-ID, throughput, cost and the sweep."""
    transfer = transfer_stages(config)
    copy = ("load_victim",) if CONSISTENCY in config.profile.attacks.recon_variants else ()  # _attacker_copy
    return [
        *victim_stages(config),
        *transfer,
        Stage(
            "leakage",
            run=_leakage_matrix,
            needs=(FEATURES, *copy, *(stage.name for stage in transfer)),
            params=("profile.attacks", "seeds.attacks", "device"),
            code=("attacks", "ciphers"),
            load=_published_leakage,
            description="the leakage matrix",
        ),
        Stage(
            "reid",
            run=lambda context: _reid(context.values[FEATURES]),
            needs=(FEATURES,),
            code=("reid", "ciphers"),
            description="re-ID after decryption",
        ),
        Stage(
            "throughput",
            run=_benchmark,
            params=("profile.bench_mib",),
            code=("ciphers",),
            description="cipher throughput",
        ),
        Stage(
            "cost",
            run=_cost,
            params=("profile.cost_gallery", "profile.cost_repeats"),
            code=("ciphers",),
            description="what protection costs",
        ),
        Stage(
            "frontier",
            run=_frontier,
            needs=(FEATURES,),
            params=("profile.attacks", "seeds.attacks", "device"),
            code=("attacks", "ciphers", "reid"),
            description="the searchable schemes' parameter sweep",
        ),
        *realism_stages(config),
    ]


def run_attack(config: StudyConfig, out_dir: str | Path) -> tuple[VictimData, LeakageResult]:
    """The study up to the leakage matrix (``shufflebits attack``): the same stages and cache; a failure raises.

    Writes ``leakage.json``, ``leakage.md`` and the reconstruction grids into ``out_dir``.
    """
    checked(config)
    runner = StageRunner(study_stages(config), config, out_dir)
    try:
        values = runner.run(targets=("leakage",))
    finally:
        close_black_box(runner.values)
    return values[FEATURES], values["leakage"]


CARD_FIGURES = ("rank1", "mAP", "mINP")


def victim_card(victim: VictimData, reid: dict | None) -> dict | None:
    """``own_world`` / ``user_world`` re-ID figures of the victim: from its zoo card, or measured in this run.

    A zoo victim's card was measured when it was trained (its world's test split
    and a user world it never saw); a victim trained here is measured on its
    world's test split and on this run's users (the plaintext re-ID figures).
    """
    if victim.card is not None:
        card = victim.card
        return {
            "source": "zoo model card",
            **{world: {key: card[world][key] for key in CARD_FIGURES} for world in ("own_world", "user_world")},
            "recipe": card.get("recipe"),
            "training": card.get("training"),
            "sha256": card.get("sha256"),
        }
    if victim.own_world is None or reid is None:
        return None
    return {
        "source": "measured in this run",
        "own_world": {key: victim.own_world[key] for key in CARD_FIGURES},
        "user_world": {key: reid["plaintext"][key] for key in CARD_FIGURES},
    }


def _victim_summary(victim: VictimData, cached: list[str], config: StudyConfig, reid: dict | None) -> dict:
    return {
        "pretrained": config.victim.pretrained,
        "untrained_zoo": config.victim.untrained_zoo,
        "transfer_model": config.transfer,  # the second re-ID model judging reconstructions
        "card": victim_card(victim, reid),
        "model": victim.victim,
        "dataset": victim.dataset,
        "black_box": victim.black_box,
        "n_attacker": len(victim.attacker),
        "n_user_query": len(victim.user_query),
        "n_user_gallery": len(victim.user_gallery),
        "feature_dim": int(victim.attacker.features.shape[1]),
        "zero_fraction": float(np.mean(victim.user_query.features == 0)),
        "cached_stages": cached,
        "epochs_trained": None if victim.history is None else len(victim.history),
    }


def run_study(config: StudyConfig, out_dir: str | Path, command: str | None = None) -> StudyResult:
    """Run every stage into ``out_dir`` and write ``index.html`` and ``results.json`` there.

    A failing stage is recorded (and shown in the report); only the stages that
    need it are skipped. ``command`` is the command line to record (the CLI passes it).
    """
    from .report import build_figures, write_report
    from .verdict import verdict

    checked(config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = environment(config, command)
    wall_start, load_start = time.perf_counter(), load_sample()
    runner = StageRunner(study_stages(config), config, out_dir, keep_going=True)
    try:
        runner.run(targets=("leakage", "reid", "frontier", *(stage.name for stage in realism_stages(config))))
    finally:
        close_black_box(runner.values)
    runner.run()  # the throughput benchmark and the cost table, with no HTTP service left running beside them

    victim: VictimData | None = runner.values.get(FEATURES)
    victim_names = {stage.name for stage in victim_stages(config)}
    leakage: LeakageResult | None = runner.values.get("leakage")
    timings = dict(runner.timings)
    results = {
        "profile": config.profile.name,
        "config": config.as_dict(),
        "victim": None
        if victim is None
        else _victim_summary(
            victim, [n for n in runner.cached if n in victim_names], config, runner.values.get("reid")
        ),
        "training_history": None if victim is None else victim.history,
        "leakage": None if leakage is None else [row.as_dict() for row in leakage.rows],
        "leakage_seconds": None if leakage is None else leakage.seconds,  # cipher -> attack -> wall seconds
        "reid": runner.values.get("reid"),
        "throughput": runner.values.get("throughput"),
        "cost": runner.values.get("cost"),
        "frontier": runner.values.get("frontier"),
        "realism": runner.values.get("realism"),
        "timings": timings,
        "stages": runner.records,
        "cached_stages": list(runner.cached),
        "failures": runner.failures,
        "environment": env,
    }
    results["verdict"] = verdict(results)
    report_start, load_report = time.perf_counter(), load_sample()
    figures = build_figures(results, {} if leakage is None else leakage.grids)
    timings["report"] = time.perf_counter() - report_start
    timings["total"] = time.perf_counter() - wall_start
    report_load = busiest(load_report, load_sample())
    runner.records["report"] = {
        "seconds": timings["report"],
        "load": report_load,
        "overloaded": overloaded(report_load),
        "cached": False,
    }
    run_load = busiest(load_start, *(record["load"] for record in runner.records.values()))
    results["load"] = {**run_load, "overloaded": overloaded(run_load)}  # the highest of the run
    index_html, results_json = write_report(results, figures, out_dir)
    return StudyResult(results, index_html, results_json, runner.failures)
