"""The study's report: one self-contained ``index.html`` and the ``results.json`` behind it.

The page has inline CSS and every image as a base64 PNG data URI, so it reads
offline, from an e-mail attachment or a CI artefact alike. Every number on it
is read from the results of the run; nothing is typed in.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np

from ...atomic import atomic_write_text
from ...errors import ShuffleBitsError
from ..load import load_text, overloaded
from .figures import bar_figure
from .sections import (
    cost_table,
    fmt,
    key_value_table,
    leakage_html,
    realism_html,
    reid_html,
    section,
    timings_html,
    victim_card_html,
)

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 1.5em; color: #1d232a; background: #fff; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #dde3ea; padding-bottom: 0.2em; margin-top: 1.8em; }
.sub { color: #5b6570; margin-top: 0; }
table { border-collapse: collapse; margin: 0.8em 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d5dbe1; padding: 0.35em 0.6em; text-align: right; vertical-align: top; }
th { background: #f2f5f8; text-align: center; } td.name, th.name { text-align: left; }
td .detail { display: block; color: #5b6570; font-size: 0.8em; }
.failed { background: #fdecea; border-left: 4px solid #c62828; padding: 0.5em 1em; margin: 0.6em 0; }
.ok { color: #1b7f3b; font-weight: 600; } .bad { color: #c62828; font-weight: 600; }
figure { display: inline-block; margin: 0.6em 1em 0.6em 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #d5dbe1; image-rendering: pixelated; }
figure img.grid { width: 900px; }
figcaption { color: #5b6570; font-size: 0.85em; }
section { overflow-x: auto; } details { margin: 0.6em 0; }
code, pre { font-family: ui-monospace, monospace; font-size: 0.9em; }
td code { white-space: pre-wrap; overflow-wrap: anywhere; }
.beaten { display: block; color: #8a4b00; font-weight: 600; font-size: 0.8em; }
.busy { color: #8a4b00; font-weight: 600; }
.verdict { padding: 0.6em 1em; margin: 0.6em 0; border-left: 4px solid #1b7f3b; background: #eef7f0; }
.verdict.weak { border-left-color: #c62828; background: #fdecea; font-weight: 600; }
.note { color: #5b6570; font-size: 0.9em; max-width: 60em; }
"""

# Lets a headless browser (the report's test) confirm every embedded image decoded.
LOAD_CHECK = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  document.body.setAttribute("data-images-total", images.length);
  document.body.setAttribute("data-images-decoded",
    images.filter(function (img) { return img.complete && img.naturalWidth > 0; }).length);
  if (location.hash !== "#check-layout") { return; }
  // The report's browser test: every column header inside the viewport, no table wider than its section.
  var width = document.documentElement.clientWidth;
  var headers = Array.prototype.slice.call(document.querySelectorAll("th"));
  var off = headers.filter(function (th) { return th.getBoundingClientRect().right > width + 0.5; });
  var wide = Array.prototype.slice.call(document.querySelectorAll("section")).filter(function (s) {
    return s.scrollWidth > s.clientWidth + 1;
  });
  document.body.setAttribute("data-viewport-width", width);
  document.body.setAttribute("data-headers-total", headers.length);
  document.body.setAttribute("data-headers-offscreen",
    off.map(function (th) { return th.textContent; }).join(" | "));
  document.body.setAttribute("data-sections-scrolling", wide.map(function (s) { return s.id; }).join(" "));
});
"""


def jsonable(value):
    """Plain JSON types: numpy scalars and arrays unwrapped, NaN and inf as null."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


TRAINING_STAGES = ("victim_world", "train_victim", "load_victim")  # the stages behind the training section


def _failure(failures: dict[str, str], stages: tuple[str, ...]) -> str | None:
    """The first recorded failure among ``stages``."""
    return next((f"{name}: {failures[name]}" for name in stages if name in failures), None)


def _code(text: str) -> str:
    """``text`` escaped, with its `backticked` options as <code> (the terminal shows the backticks)."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{part}</code>" if index % 2 else part for index, part in enumerate(parts))


def _wall(timings: dict, stages: dict) -> str:
    """This run's wall time and, when stages were reused, what computing them took when they were computed."""
    total = timings.get("total")
    text = f"this run took {fmt(total, 0)} s"
    reused = {name: record for name, record in stages.items() if record.get("cached")}
    if reused:
        computed = sum((record.get("computed") or {}).get("seconds") or 0.0 for record in reused.values())
        text += f" ({len(reused)} stages reused from the cache, which took {fmt(computed, 0)} s to compute)"
    return text


def render_html(results: dict, figures: dict[str, str]) -> str:
    """The whole page as one string."""
    failures = results.get("failures", {})
    env = results["environment"]
    victim = results.get("victim")
    intro = ""
    if victim:
        intro = (
            f"<p>Victim: {html.escape(victim['model'])}, served {html.escape(victim['black_box'])}, "
            f"{victim['feature_dim']}-d features ({fmt(100 * victim['zero_fraction'], 1)}% exact zeros). "
            f"Attacker/user images: {html.escape(victim['dataset'])}; the attacker labels "
            f"{victim['n_attacker']:,} images of its own, the users leak {victim['n_user_query']:,} query and "
            f"{victim['n_user_gallery']:,} gallery features.</p>"
        ) + victim_card_html(victim.get("card"))
        if victim.get("untrained_zoo"):
            intro += (
                f'<p class="failed">The profile\'s zoo victim {html.escape(victim["untrained_zoo"])} is not '
                "installed in this checkout, so this run trained a weaker victim of its own "
                f"(<code>shufflebits zoo train {html.escape(victim['untrained_zoo'])}</code> makes the zoo "
                "victim).</p>"
            )
    failed_list = ""
    if failures:
        failed_list = (
            '<div class="failed"><b>Stages that did not complete:</b><ul>'
            + "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in failures.items())
            + "</ul></div>"
        )

    leakage = leakage_html(results["leakage"]) if results.get("leakage") else None
    training = figures.get("training")
    if training is None and victim:
        source = f"the zoo victim {victim['pretrained']}" if victim.get("pretrained") else "given weights"
        training = f"<p>The victim was loaded from {html.escape(source)}; this run trained nothing.</p>"
    reid = reid_html(results["reid"]) if results.get("reid") else None
    timings = results["timings"]
    stage_times = {
        k: v for k, v in timings.items() if k != "total" and "/" not in k and v is not None and math.isfinite(v)
    }
    timing_figure = (
        bar_figure(list(stage_times), list(stage_times.values()), "seconds this run", "stage") if stage_times else None
    )
    stages = results.get("stages") or {}
    load = results.get("load")
    load_note = (
        f'<p class="note{" busy" if overloaded(load) else ""}">Highest 1-minute {html.escape(load_text(load))} '
        "during this run. A stage computed while the load exceeded the CPU count is marked; its time, and the "
        "throughput figures, are then slower than on an idle machine.</p>"
        if load
        else ""
    )

    def drawn(title: str, anchor: str, name: str) -> list[str]:
        """A section of the leakage stage's figure ``name``, only when the study drew it."""
        return [section(title, anchor, figures[name], failures.get("leakage"))] if figures.get(name) else []

    sections = [
        section(
            "Leakage matrix: what each attack recovers from each kind of features",
            "leakage",
            leakage,
            failures.get("leakage"),
        ),
        *drawn("Key recovery from known pairs", "known-pairs", "known_pairs"),
        *drawn(
            "Inverting searchable ciphertexts: from known pairs, and from ciphertexts alone",
            "inversion-curves",
            "inversion_curves",
        ),
        *drawn("Template recovery from revealed scores (homomorphic matching)", "score-reveal", "score_reveal"),
        section(
            "Image reconstruction from features",
            "reconstruction",
            figures.get("reconstruction"),
            failures.get("leakage"),
        ),
        section("Re-identification before and after encryption", "reid", reid, failures.get("reid")),
        *(
            [
                section(
                    "The frontier: utility against leakage, at what cost",
                    "frontier",
                    figures.get("frontier"),
                    failures.get("frontier"),
                )
            ]
            if figures.get("frontier") or "frontier" in failures
            else []
        ),
        *(
            [section("How real the synthetic world looks", "realism", realism_html(realism), failures.get("realism"))]
            if (realism := results.get("realism")) or "realism" in failures
            else []
        ),
        section("Victim training", "training", training, _failure(failures, TRAINING_STAGES)),
        section("Cipher throughput", "throughput", figures.get("throughput"), failures.get("throughput")),
        *(
            [section("What protection costs", "cost", cost_table(cost) if cost else None, failures.get("cost"))]
            if (cost := results.get("cost")) or "cost" in failures
            else []
        ),
        section(
            "Wall time per stage",
            "timings",
            (f'<figure><img src="{timing_figure}" alt="wall time per stage"></figure>' if timing_figure else "")
            + timings_html(timings, stages)
            + load_note,
            None,
        ),
        section("Environment", "environment", key_value_table(env, "environment-table"), None),
    ]
    title = f"ShuffleBits study — profile {html.escape(results['profile'])}"
    verdict = results.get("verdict")
    first_line = (
        f'<p id="verdict" class="verdict{"" if verdict["ok"] else " weak"}">{_code(verdict["headline"])}</p>'
        if verdict
        else ""
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>'
        f"<style>{CSS}</style></head><body>"
        f"{first_line}<h1>{title}</h1>"
        f'<p class="sub">What leaked deep features give away, and what encrypting them changes. '
        f"Run {html.escape(env['started_utc'])} UTC, seed {env['seeds']['seed']}, "
        f"{_wall(timings, stages)}.</p>"
        f"{intro}{failed_list}{''.join(sections)}"
        f"<script>{LOAD_CHECK}</script></body></html>\n"
    )


def write_report(results: dict, figures: dict[str, str], out_dir: Path) -> tuple[Path, Path]:
    """Write ``results.json`` and ``index.html`` atomically; return their paths."""
    out_dir = Path(out_dir)
    results_json = out_dir / "results.json"
    index_html = out_dir / "index.html"
    atomic_write_text(results_json, json.dumps(jsonable(results), indent=1, allow_nan=False) + "\n")
    atomic_write_text(index_html, render_html(results, figures))
    return index_html, results_json


def read_results(path: Path, *needed: str) -> dict:
    """A study's ``results.json`` holding the top-level keys ``needed``; anything else is a one-line error."""
    try:
        results = json.loads(Path(path).read_text())
    except OSError as error:
        raise ShuffleBitsError(f"cannot read {path}: {error.strerror or error}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ShuffleBitsError(f"{path} is not a study's results.json (not JSON: {error})") from None
    missing = [key for key in needed if not isinstance(results, dict) or key not in results]
    if missing:
        raise ShuffleBitsError(f"{path} is not a study's results.json (no {', '.join(missing)})")
    return results
