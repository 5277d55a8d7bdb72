"""The study's report: one self-contained ``index.html`` and the ``results.json`` behind it.

The page has inline CSS and every image as a base64 PNG data URI, so it reads
offline, from an e-mail attachment or a CI artefact alike. Every number on it
is read from the results of the run; nothing is typed in.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_text

CIPHER_ORDER = ("plaintext", "shufflebits", "shufflebits-dim", "shufflebits-otp", "chacha20", "aes-gcm")
METRIC_ORDER = ("attr_bacc_mean", "recon_cosine_distance", "recon_rank1", "reid_rank1", "key_bits_recovered")
LOWER_IS_BETTER = {"recon_cosine_distance"}  # for the attacker; every other metric: higher is better
METRIC_TITLES = {
    "attr_bacc_mean": "attribute inference<br>(mean balanced accuracy)",
    "recon_cosine_distance": "reconstruction<br>(cosine distance, lower = leak)",
    "recon_rank1": "reconstruction as query<br>(rank-1)",
    "reid_rank1": "linking users<br>(re-ID rank-1 on what leaks)",
    "key_bits_recovered": "key recovery<br>(bit positions)",
}

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 1.5em; color: #1d232a; background: #fff; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #dde3ea; padding-bottom: 0.2em; margin-top: 1.8em; }
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
section { overflow-x: auto; } details { margin: 0.6em 0; } code, pre { font-family: ui-monospace, monospace; font-size: 0.9em; }
.note { color: #5b6570; font-size: 0.9em; max-width: 60em; }
"""

# Lets a headless browser (the report's test) confirm every embedded image decoded.
LOAD_CHECK = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  document.body.setAttribute("data-images-total", images.length);
  document.body.setAttribute("data-images-decoded",
    images.filter(function (img) { return img.complete && img.naturalWidth > 0; }).length);
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


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(item, digits) for item in value) + "]"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}" if math.isfinite(value) else "–"
    return html.escape(str(value))


def _td(value, digits: int = 3) -> str:
    """A table cell: text left-aligned, numbers right-aligned."""
    return f'<td class="name">{_fmt(value)}</td>' if isinstance(value, str) else f"<td>{_fmt(value, digits)}</td>"


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure_uri(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return _png_uri(buffer.getvalue())


def _cipher_rank(name: str) -> tuple[int, str]:
    return (CIPHER_ORDER.index(name) if name in CIPHER_ORDER else len(CIPHER_ORDER), name)


def best_rows(rows: list[dict]) -> dict[tuple[str, str], dict]:
    """For each (cipher, metric) the row of the attack that did best (per-attribute rows excluded)."""
    best: dict[tuple[str, str], dict] = {}
    for row in rows:
        if row.get("attribute") is not None or row.get("value") is None:
            continue
        key = (row["cipher"], row["metric"])
        current = best.get(key)
        sign = -1.0 if row["metric"] in LOWER_IS_BETTER else 1.0
        if current is None or sign * row["value"] > sign * current["value"]:
            best[key] = row
    return best


SHADED = {"attr_bacc_mean", "attr_bacc", "recon_rank1", "reid_rank1"}  # rates in [0, 1], higher = more leak


def _advantage(row: dict) -> float:
    """How far a rate beats its chance level, 0 (chance) to 1 (perfect), for cell shading.

    Only rates are shaded: distances and bit counts have no scale on which
    "how far above chance" reads the same.
    """
    value, chance = row.get("value"), row.get("chance")
    if row["metric"] not in SHADED or value is None or chance is None or not 0 <= chance < 1:
        return 0.0
    return float(np.clip((value - chance) / (1 - chance), 0, 1))


def _cell(row: dict | None, compact: bool = False) -> str:
    """One matrix cell; ``compact`` (per-attribute table) keeps the chance level and p-value only."""
    if row is None:
        return "<td>–</td>"
    shade = _advantage(row)
    value = _fmt(row["value"]) + (f" / {_fmt(row['of'])}" if row.get("of") is not None else "")
    detail = f"chance {_fmt(row.get('chance'))}"
    if not compact and isinstance(row.get("chance_ci"), list) and len(row["chance_ci"]) == 2:
        detail += f" (95% {_fmt(row['chance_ci'][0])}–{_fmt(row['chance_ci'][1])})"
    if row.get("p_value") is not None:
        detail += f" · p {_fmt(row['p_value'])}"
    if not compact:
        detail += f" · n {_fmt(row.get('n'))}"
    if not compact and row.get("attack"):
        detail += f" · {html.escape(str(row['attack']))}"
    return (
        f'<td style="background: rgba(214, 69, 65, {0.55 * shade:.3f})">'
        f"{value}<span class=\"detail\">{detail}</span></td>"
    )


def leakage_html(rows: list[dict]) -> str:
    """The matrix (cipher x metric, best attack per cell), per-attribute table and every row."""
    best = best_rows(rows)
    ciphers = sorted({row["cipher"] for row in rows}, key=_cipher_rank)
    metrics = [m for m in METRIC_ORDER if any(key[1] == m for key in best)]
    metrics += sorted({key[1] for key in best} - set(metrics))
    head = "".join(f"<th>{METRIC_TITLES.get(m, html.escape(m))}</th>" for m in metrics)
    body = "".join(
        f'<tr><td class="name">{html.escape(c)}</td>' + "".join(_cell(best.get((c, m))) for m in metrics) + "</tr>"
        for c in ciphers
    )
    parts = [
        '<table id="leakage-matrix"><thead><tr><th class="name">features</th>' + head + "</tr></thead>",
        f"<tbody>{body}</tbody></table>",
        '<p class="note">Each cell: the figure of the best attack for the attacker, its chance level (random '
        "guessing; with a 95% interval and p-value from a label-permutation test where measured), the number of "
        "user samples and the attack. Attribute inference picks its attack on the attacker's own validation split; "
        "where a cell has several attacks (all in the full table below) the best on the users' data is shown, an "
        "upper bound. Shading (rates only): how far the attack beats chance (none = at chance). Keys and, for this "
        "experiment only, per-vector nonces derive from the seed (deployments draw nonces from the OS); the "
        "plaintext and ShuffleBits fixed / per-dimension rows are tested to repeat exactly with the same seed.</p>",
    ]
    per_attribute = [row for row in rows if row.get("attribute") is not None and row["metric"] == "attr_bacc"]
    if per_attribute:
        attributes = list(dict.fromkeys(row["attribute"] for row in per_attribute))
        table: dict[tuple[str, str], dict] = {}
        for row in per_attribute:
            key = (row["attribute"], row["cipher"])
            if key not in table or row["value"] > table[key]["value"]:
                table[key] = row
        attr_ciphers = sorted({row["cipher"] for row in per_attribute}, key=_cipher_rank)
        parts.append("<h3>Attribute inference per attribute (balanced accuracy of the attack chosen above)</h3>")
        parts.append(
            '<table id="leakage-attributes"><thead><tr><th class="name">attribute</th>'
            + "".join(f"<th>{html.escape(c)}</th>" for c in attr_ciphers)
            + "</tr></thead><tbody>"
            + "".join(
                f'<tr><td class="name">{html.escape(a)}</td>' + "".join(_cell(table.get((a, c)), compact=True) for c in attr_ciphers) + "</tr>"
                for a in attributes
            )
            + "</tbody></table>"
        )
    columns = [
        key for key in dict.fromkeys(key for row in rows for key in row) if not any(isinstance(row.get(key), dict) for row in rows)
    ]
    parts.append(
        f"<details><summary>All {len(rows)} rows of leakage.json</summary><table><thead><tr>"
        + "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        + "</tr></thead><tbody>"
        + "".join("<tr>" + "".join(_td(row.get(c)) for c in columns) + "</tr>" for row in rows)
        + "</tbody></table></details>"
    )
    return "\n".join(parts)


def reconstruction_html(grids: dict) -> str:
    """The attack's image grids (original | reconstruction), one per (cipher, attack), embedded."""
    if not grids:
        return "<p>No reconstruction images were made by the attack stage.</p>"
    from ..attacks.reconstruction import grid_png

    ordered = sorted(grids, key=lambda key: (_cipher_rank(key[0]), key[1]))
    return '<p class="note">Each grid: pairs of a user image (left) and what the attack rebuilt from its leaked features (right).</p>' + "\n".join(
        f'<figure><img class="grid" src="{_png_uri(grid_png(grids[key]))}" alt="{html.escape(f"{key[0]}: {key[1]}")}">'
        f"<figcaption>{html.escape(f'{key[0]}: {key[1]}')}</figcaption></figure>"
        for key in ordered
    )


def training_figure(history: list[dict]) -> str | None:
    """Training curves: every numeric series of the history against the epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        return None
    x_key = "epoch" if all("epoch" in h for h in history) else None
    x = [h["epoch"] for h in history] if x_key else list(range(1, len(history) + 1))
    series = [
        key
        for key in dict.fromkeys(k for h in history for k in h)
        if key not in (x_key, "steps", "seconds") and all(isinstance(h.get(key), (int, float)) and not isinstance(h.get(key), bool) for h in history)
    ]
    if not series:
        return None
    columns = min(4, len(series))
    rows = -(-len(series) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.5 * rows), squeeze=False)
    for axis in axes.flat[len(series) :]:
        axis.set_visible(False)
    for axis, key in zip(axes.flat, series):
        axis.plot(x, [h[key] for h in history], marker="o", markersize=3)
        axis.set_title(key, fontsize=10)
        axis.set_xlabel(x_key or "step", fontsize=9)
        axis.grid(alpha=0.3)
    fig.tight_layout()
    return _figure_uri(fig)


def _bar_figure(labels: list[str], values: list[float], xlabel: str, log: bool = False) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(7.5, 0.35 * len(labels) + 1.0))
    positions = np.arange(len(labels))
    axis.barh(positions, values, color="#3b6ea5")
    axis.set_yticks(positions, labels, fontsize=9)
    axis.invert_yaxis()
    axis.set_xlabel(xlabel)
    if log:
        axis.set_xscale("log")
    for position, value in zip(positions, values):
        axis.text(value, position, f" {value:,.1f}" if value >= 1 else f" {value:.3g}", va="center", fontsize=8)
    axis.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _figure_uri(fig)


THROUGHPUT = "mfloat_per_s"  # the benchmark rows' throughput column (million floats per second)


def _row_label(row: dict) -> str:
    """``name [kernel]`` for a benchmark row."""
    return f"{row['name']} [{row['kernel']}]" if row.get("kernel") else str(row["name"])


def _measured(rows: list[dict]) -> list[dict]:
    return [row for row in rows if isinstance(row.get(THROUGHPUT), (int, float)) and row[THROUGHPUT] > 0]


def throughput_html(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    table = (
        '<table id="throughput"><thead><tr>'
        + "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        + "</tr></thead><tbody>"
        + "".join("<tr>" + "".join(_td(row.get(c)) for c in columns) + "</tr>" for row in rows)
        + "</tbody></table>"
    )
    measured = _measured(rows)
    if not measured:
        return table
    figure = _bar_figure(
        [_row_label(r) for r in measured], [float(r[THROUGHPUT]) for r in measured], "million floats per second (log scale)", log=True
    )
    return f'<figure><img src="{figure}" alt="cipher throughput"></figure>' + table


def reid_html(reid: dict) -> str:
    metrics = list(reid["plaintext"])
    rows = [("plaintext", reid["plaintext"])] + sorted(reid["decrypted"].items(), key=lambda kv: _cipher_rank(kv[0]))
    head = "".join(f"<th>{html.escape(m)}</th>" for m in metrics) + "<th>bit-exact decryption</th><th>same figures</th>"
    body = []
    for name, figures in rows:
        label = "plaintext" if name == "plaintext" else f"{name} → decrypted"
        checks = (
            "<td>–</td><td>–</td>"
            if name == "plaintext"
            else "".join(
                f'<td class="{"ok" if figures[k] else "bad"}">{_fmt(figures[k])}</td>' for k in ("bit_exact", "same_figures")
            )
        )
        body.append(f'<tr><td class="name">{html.escape(label)}</td>' + "".join(f"<td>{_fmt(figures.get(m))}</td>" for m in metrics) + checks + "</tr>")
    return (
        f'<table id="reid"><thead><tr><th class="name">features</th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
        f'<p class="note">The victim\'s own job: {reid["n_query"]} user queries against a gallery of '
        f"{reid['n_gallery']} (Market-1501 protocol). Each cipher encrypts the features with a fresh key and "
        "decrypts them; the figures are recomputed from the decrypted features.</p>"
    )


def _key_value_table(items: dict, table_id: str) -> str:
    return (
        f'<table id="{table_id}"><tbody>'
        + "".join(
            f'<tr><td class="name">{html.escape(str(k))}</td><td class="name">'
            + (f"<code>{html.escape(json.dumps(v))}</code>" if isinstance(v, (dict, list)) else _fmt(v))
            + "</td></tr>"
            for k, v in items.items()
        )
        + "</tbody></table>"
    )


def timings_html(timings: dict[str, float], cached: list[str]) -> str:
    """Seconds per stage; a stage read from the cache says so (its time is the time to load it)."""

    def label(name: str) -> str:
        return html.escape(name) + (" (cached)" if name.rsplit("/", 1)[-1] in cached else "")

    return (
        '<table id="timings"><thead><tr><th class="name">stage</th><th>seconds</th></tr></thead><tbody>'
        + "".join(f'<tr><td class="name">{label(k)}</td><td>{_fmt(v, 1)}</td></tr>' for k, v in timings.items())
        + "</tbody></table>"
    )


def _section(title: str, anchor: str, content: str | None, failure: str | None) -> str:
    failed = f'<div class="failed">This stage did not complete: {html.escape(failure)}</div>' if failure else ""
    return f'<section id="{anchor}"><h2>{title}</h2>{failed}{content or ""}</section>'


def build_figures(results: dict, grids: dict) -> dict[str, str]:
    """The page's images (data URIs) from the results and the attack stage's reconstruction grids.

    Separate from ``render_html`` so the study can time it as the report stage.
    """
    figures = {}
    if results.get("leakage"):
        figures["reconstruction"] = reconstruction_html(grids)
    history = results.get("training_history")
    if history:
        uri = training_figure(history)
        epochs = f"<p>{len(history)} of {results['environment']['profile']['epochs']} epochs trained (training stops early only at the profile's max_minutes).</p>"
        figures["training"] = epochs + (
            f'<figure><img src="{uri}" alt="training curves"></figure>' if uri else "<p>The training history has no numeric series.</p>"
        )
    if results.get("throughput"):
        figures["throughput"] = throughput_html(results["throughput"])
    return figures


def render_html(results: dict, figures: dict[str, str]) -> str:
    """The whole page as one string."""
    failures = results.get("failures", {})
    env = results["environment"]
    victim = results.get("victim")
    intro = ""
    if victim:
        intro = (
            f"<p>Victim: {html.escape(victim['model'])}, served {html.escape(victim['black_box'])}, "
            f"{victim['feature_dim']}-d features ({_fmt(100 * victim['zero_fraction'], 1)}% exact zeros). "
            f"Attacker/user images: {html.escape(victim['dataset'])}; the attacker labels "
            f"{victim['n_attacker']:,} images of its own, the users leak {victim['n_user_query']:,} query and "
            f"{victim['n_user_gallery']:,} gallery features.</p>"
        )
    failed_list = ""
    if failures:
        failed_list = '<div class="failed"><b>Stages that did not complete:</b><ul>' + "".join(
            f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in failures.items()
        ) + "</ul></div>"

    leakage = leakage_html(results["leakage"]) if results.get("leakage") else None
    training = figures.get("training")
    if training is None and victim:
        training = "<p>The victim was loaded from given weights; this run trained nothing.</p>"
    reid = reid_html(results["reid"]) if results.get("reid") else None
    timings = results["timings"]
    stage_times = {k: v for k, v in timings.items() if k != "total" and "/" not in k and v is not None and math.isfinite(v)}
    timing_figure = _bar_figure(list(stage_times), list(stage_times.values()), "seconds") if stage_times else None

    sections = [
        _section("Leakage matrix: what each attack recovers from each kind of features", "leakage", leakage, failures.get("leakage")),
        _section("Image reconstruction from features", "reconstruction", figures.get("reconstruction"), failures.get("leakage")),
        _section("Re-identification before and after encryption", "reid", reid, failures.get("reid")),
        _section("Victim training", "training", training, failures.get("victim")),
        _section("Cipher throughput", "throughput", figures.get("throughput"), failures.get("throughput")),
        _section(
            "Wall time per stage",
            "timings",
            (f'<figure><img src="{timing_figure}" alt="wall time per stage"></figure>' if timing_figure else "")
            + timings_html(timings, results.get("cached_stages") or []),
            None,
        ),
        _section("Environment", "environment", _key_value_table(env, "environment-table"), None),
    ]
    title = f"ShuffleBits study — profile {html.escape(results['profile'])}"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>'
        f"<style>{CSS}</style></head><body>"
        f"<h1>{title}</h1>"
        f'<p class="sub">What leaked deep features give away, and what encrypting them changes. '
        f"Run {html.escape(env['started_utc'])} UTC, seed {env['seeds']['seed']}, "
        f"total {timings.get('total', float('nan')):.0f} s.</p>"
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


def summary_table(results: dict) -> str:
    """A compact plain-text summary for the terminal."""
    lines = []
    rows = results.get("leakage")
    if rows:
        best = best_rows(rows)
        ciphers = sorted({c for c, _ in best}, key=_cipher_rank)
        metrics = [m for m in METRIC_ORDER if any(key[1] == m for key in best)]
        lines.append("leakage (best attack; value / chance)")
        lines.append(f"  {'features':<16}" + "".join(f"{m:>26}" for m in metrics))
        for cipher in ciphers:
            cells = []
            for metric in metrics:
                row = best.get((cipher, metric))
                cells.append(f"{_plain(row['value'])} / {_plain(row.get('chance'))}" if row else "-")
            lines.append(f"  {cipher:<16}" + "".join(f"{c:>26}" for c in cells))
    reid = results.get("reid")
    if reid:
        plain = reid["plaintext"]
        lines.append("re-ID (plaintext -> decrypted)")
        lines.append("  plaintext        " + "  ".join(f"{k} {_plain(v)}" for k, v in plain.items()))
        for name, figures in sorted(reid["decrypted"].items(), key=lambda kv: _cipher_rank(kv[0])):
            lines.append(
                f"  {name:<16} mAP {_plain(figures['mAP'])}  bit-exact {'yes' if figures['bit_exact'] else 'NO'}"
                f"  same figures {'yes' if figures['same_figures'] else 'NO'}"
            )
    measured = _measured(results.get("throughput") or [])
    if measured:
        lines.append("throughput (million floats/s)")
        lines.extend(f"  {_row_label(row):<56} {row[THROUGHPUT]:>10,.1f}" for row in measured)
    lines.append("wall time (s)")
    lines.extend(f"  {name:<28} {seconds:>8.1f}" for name, seconds in results["timings"].items())
    for name, failure in results.get("failures", {}).items():
        lines.append(f"FAILED {name}: {failure}")
    return "\n".join(lines)


def _plain(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(value)
    return f"{value:.3f}" if math.isfinite(value) else "-"
