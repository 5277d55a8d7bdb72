"""One stage runner for the study and ``shufflebits attack``: declared stages, keys from declarations.

A ``Stage`` declares what it needs (upstream stages by name), the config fields
it reads (``params``, dotted names such as ``profile.epochs``), the files whose
bytes it reads (``files``, dotted names of config fields holding paths) and the
``shufflebits`` packages whose source computes it (``code``). Its key digests
exactly those, plus the upstream keys, so an unrelated option never invalidates
it and editing the training code retrains.

A stage with a ``load`` is cached: ``run`` writes into a temporary folder that
is renamed to ``cache/<stage>-<key>`` only when the stage finished (a folder
that exists is complete), and ``load`` makes the stage's value from that
folder. With ``keep_going`` a failure is recorded (traceback in ``logs/``)
and only the stages that need the failed one are skipped, by name.

Each stage's record (``StageRunner.records``) keeps the load average and CPU
count it ran under; a cached stage also writes ``timing.json`` into its folder,
so a re-run that reuses the folder still shows how long computing it took, and
under what load, instead of the fraction of a second it took to load it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..atomic import atomic_write_text
from .cache import code_version, digest, file_hash
from .load import busiest, load_sample, overloaded

INPUTS_FILE = "inputs.json"
TIMING_FILE = "timing.json"  # how long computing a cached stage took, and under what load
RUNNER_FILES = (INPUTS_FILE, TIMING_FILE)  # what the runner adds to a stage's folder


@dataclass(frozen=True)
class StageContext:
    """What a stage's ``run`` and ``load`` see."""

    config: Any
    out_dir: Path
    values: dict[str, Any]  # the values of the stages in ``needs``, by name
    folder: Path | None = None  # a cached stage's folder (temporary in ``run``, final in ``load``)
    built: Any = None  # in ``load``: what ``run`` returned this time; None when the folder came from the cache


@dataclass(frozen=True)
class Stage:
    """One step: ``run(context)`` computes its value (a cached stage also writes its folder)."""

    name: str
    run: Callable[[StageContext], Any]
    needs: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    code: tuple[str, ...] = ()
    load: Callable[[StageContext], Any] | None = None
    description: str = ""


def lookup(config: Any, dotted: str) -> Any:
    """``config.profile.epochs`` for ``"profile.epochs"`` (dict entries by key: ``"seeds.training"``)."""
    value = config
    for part in dotted.split("."):
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    return value


def _plain(value: Any) -> Any:
    """JSON-ready: dataclasses as dicts, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def changed_inputs(before: dict, now: dict) -> list[str]:
    """Dotted names of the inputs that differ (``params.profile.epochs``, ``needs.user_world``)."""
    changed = []
    for group in sorted(set(before) | set(now)):
        old, new = before.get(group), now.get(group)
        if isinstance(old, dict) and isinstance(new, dict):
            changed += [f"{group}.{name}" for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)]
        elif old != new:
            changed.append(group)
    return changed


class StageRunner:
    """Runs declared stages in order: keys, cache, timings, failures and skips."""

    def __init__(self, stages: Iterable[Stage], config: Any, out_dir: str | Path, keep_going: bool = False):
        self.stages = list(stages)
        self.config = config
        self.out_dir = Path(out_dir)
        self.cache_dir = self.out_dir / "cache"
        self.keep_going = keep_going
        self.values: dict[str, Any] = {}
        self.keys: dict[str, str] = {}
        self.timings: dict[str, float] = {}  # seconds this run spent on each stage (loading, for a cached one)
        self.records: dict[str, dict] = {}  # per stage: this run's seconds, load, and for a cached one its timing.json
        self.cached: list[str] = []
        self.failures: dict[str, str] = {}
        self.reasons: dict[str, list[str]] = {}  # why a cached stage re-ran: inputs changed since its newest folder
        seen: set[str] = set()
        for stage in self.stages:
            if stage.name in seen:
                raise ValueError(f"stage {stage.name!r} is declared twice")
            unknown = [need for need in stage.needs if need not in seen]
            if unknown:
                raise ValueError(f"stage {stage.name!r} needs {', '.join(unknown)}, not declared before it")
            seen.add(stage.name)

    def log(self, message: str) -> None:
        if getattr(self.config, "progress", False):
            tqdm.write(f"[study] {message}", file=sys.stderr)

    def _wanted(self, targets: Iterable[str] | None) -> set[str]:
        """The targets and, transitively, what they need (every stage when ``targets`` is None)."""
        by_name = {stage.name: stage for stage in self.stages}
        if targets is None:
            return set(by_name)
        wanted, todo = set(), list(targets)
        while todo:
            name = todo.pop()
            if name not in by_name:
                raise ValueError(f"no stage {name!r}; stages: {', '.join(by_name)}")
            if name not in wanted:
                wanted.add(name)
                todo.extend(by_name[name].needs)
        return wanted

    def run(self, targets: Iterable[str] | None = None) -> dict[str, Any]:
        """Run the stages ``targets`` need (all by default) that have not run yet; returns every value so far."""
        wanted = self._wanted(targets)
        for stage in self.stages:
            if stage.name not in wanted or stage.name in self.values or stage.name in self.failures:
                continue
            missing = [need for need in stage.needs if need in self.failures]
            if missing:
                self.failures[stage.name] = f"skipped: needs {', '.join(missing)}"
                self.log(f"stage {stage.name} skipped: needs {', '.join(missing)}")
                continue
            self._run_one(stage)
        return self.values

    def inputs(self, stage: Stage) -> dict:
        """Exactly what the stage's key digests."""
        files = {name: lookup(self.config, name) for name in stage.files}
        return {
            "params": {name: _plain(lookup(self.config, name)) for name in stage.params},
            "files": {name: None if path is None else file_hash(path) for name, path in files.items()},
            "needs": {name: self.keys[name] for name in stage.needs},
            "code": code_version(*stage.code) if stage.code else None,
        }

    def _run_one(self, stage: Stage) -> None:
        start, load_start = time.perf_counter(), load_sample()
        record: dict = {"cached": False}
        try:
            inputs = self.inputs(stage)
            self.keys[stage.name] = digest(inputs)
            context = StageContext(self.config, self.out_dir, {need: self.values[need] for need in stage.needs})
            if stage.load is None:
                self.log(f"{stage.description or stage.name} ...")
                self.values[stage.name] = stage.run(context)
            else:
                self.values[stage.name] = self._cached(stage, context, inputs, record)
        except Exception as error:  # one stage's failure must not hide the others' results
            if not self.keep_going:
                raise
            message = f"{type(error).__name__}: {error}".splitlines()[0]
            self.failures[stage.name] = message
            logs = self.out_dir / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            atomic_write_text(logs / f"{stage.name}.log", traceback.format_exc())
            self.log(f"stage {stage.name} FAILED: {message} (traceback in logs/{stage.name}.log)")
        finally:
            self.timings[stage.name] = time.perf_counter() - start
            load = busiest(load_start, load_sample())
            self.records[stage.name] = {
                "seconds": self.timings[stage.name],
                "load": load,
                "overloaded": overloaded(load),  # load above the CPU count: the time is longer than alone
                **record,
            }

    def _cached(self, stage: Stage, context: StageContext, inputs: dict, record: dict) -> Any:
        """The stage's value from ``cache/<name>-<key>``, building that folder first unless it exists.

        ``record`` gets ``cached`` and, for a reused folder, ``computed`` (its ``timing.json``, or None).
        """
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        final = self.cache_dir / f"{stage.name}-{self.keys[stage.name]}"
        if final.is_dir():
            self.cached.append(stage.name)
            timing = final / TIMING_FILE
            computed = json.loads(timing.read_text()) if timing.is_file() else None
            record.update(cached=True, computed=computed)
            took = (
                "" if computed is None else f", computed in {computed['seconds']:.1f} s on {computed['finished_utc']}"
            )
            self.log(f"reused: {stage.description or stage.name} (cache/{final.name}{took})")
            return stage.load(dataclasses.replace(context, folder=final))
        self.log(f"{stage.description or stage.name} ...")
        self._explain(stage, inputs)
        tmp = Path(tempfile.mkdtemp(prefix=f".{stage.name}-", suffix=".tmp", dir=self.cache_dir))
        try:
            start, load_start = time.perf_counter(), load_sample()
            built = stage.run(dataclasses.replace(context, folder=tmp))
            load = busiest(load_start, load_sample())
            timing = {
                "seconds": time.perf_counter() - start,
                "load": load,
                "overloaded": overloaded(load),
                "finished_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
            }
            (tmp / INPUTS_FILE).write_text(json.dumps(inputs, sort_keys=True, indent=1, default=str))
            (tmp / TIMING_FILE).write_text(json.dumps(timing, indent=1))
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return stage.load(dataclasses.replace(context, folder=final, built=built))

    def _explain(self, stage: Stage, inputs: dict) -> None:
        """Record (and log) which inputs changed since the stage's newest cached folder, if any."""
        earlier = sorted(self.cache_dir.glob(f"{stage.name}-*/{INPUTS_FILE}"), key=lambda path: path.stat().st_mtime)
        if not earlier:
            return
        before = json.loads(earlier[-1].read_text())
        self.reasons[stage.name] = changed_inputs(before, json.loads(json.dumps(inputs, default=str)))
        self.log(
            f"{stage.name}: re-running, changed since {earlier[-1].parent.name}: {', '.join(self.reasons[stage.name])}"
        )
