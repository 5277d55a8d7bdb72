"""The page's HTML tables: the leakage matrix, re-ID, timings, key-value lists, and how a value is written."""

from __future__ import annotations

import html
import json
import math

import numpy as np

from .select import METRIC_ORDER, best_rows, cipher_rank

METRIC_TITLES = {
    "attr_bacc_mean": "attribute inference<br>(mean balanced accuracy)",
    "recon_cosine_distance": "reconstruction<br>(cosine distance, lower = leak)",
    "recon_rank1": "reconstruction as query<br>(rank-1)",
    "reid_rank1": "linking users<br>(re-ID rank-1 on what leaks)",
    "key_bits_recovered": "key recovery<br>(bit positions)",
}


SHADED = {"attr_bacc_mean", "attr_bacc", "recon_rank1", "reid_rank1"}  # rates in [0, 1], higher = more leak


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(fmt(item, digits) for item in value) + "]"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}" if math.isfinite(value) else "–"
    return html.escape(str(value))


def _td(value, digits: int = 3) -> str:
    """A table cell: text left-aligned, numbers right-aligned."""
    return f'<td class="name">{fmt(value)}</td>' if isinstance(value, str) else f"<td>{fmt(value, digits)}</td>"


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
    value = fmt(row["value"]) + (f" / {fmt(row['of'])}" if row.get("of") is not None else "")
    detail = f"chance {fmt(row.get('chance'))}"
    if not compact and isinstance(row.get("chance_ci"), list) and len(row["chance_ci"]) == 2:
        detail += f" (95% {fmt(row['chance_ci'][0])}–{fmt(row['chance_ci'][1])})"
    if row.get("p_value") is not None:
        detail += f" · p {fmt(row['p_value'])}"
    if not compact:
        detail += f" · n {fmt(row.get('n'))}"
    if not compact and row.get("attack"):
        detail += f" · {html.escape(str(row['attack']))}"
    return (
        f'<td style="background: rgba(214, 69, 65, {0.55 * shade:.3f})">'
        f'{value}<span class="detail">{detail}</span></td>'
    )


def leakage_html(rows: list[dict]) -> str:
    """The matrix (cipher x metric, best attack per cell), per-attribute table and every row."""
    best = best_rows(rows)
    ciphers = sorted({row["cipher"] for row in rows}, key=cipher_rank)
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
        attr_ciphers = sorted({row["cipher"] for row in per_attribute}, key=cipher_rank)
        parts.append("<h3>Attribute inference per attribute (balanced accuracy of the attack chosen above)</h3>")
        parts.append(
            '<table id="leakage-attributes"><thead><tr><th class="name">attribute</th>'
            + "".join(f"<th>{html.escape(c)}</th>" for c in attr_ciphers)
            + "</tr></thead><tbody>"
            + "".join(
                f'<tr><td class="name">{html.escape(a)}</td>'
                + "".join(_cell(table.get((a, c)), compact=True) for c in attr_ciphers)
                + "</tr>"
                for a in attributes
            )
            + "</tbody></table>"
        )
    columns = [
        key
        for key in dict.fromkeys(key for row in rows for key in row)
        if not any(isinstance(row.get(key), dict) for row in rows)
    ]
    parts.append(
        f"<details><summary>All {len(rows)} rows of leakage.json</summary><table><thead><tr>"
        + "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        + "</tr></thead><tbody>"
        + "".join("<tr>" + "".join(_td(row.get(c)) for c in columns) + "</tr>" for row in rows)
        + "</tbody></table></details>"
    )
    return "\n".join(parts)


def table_html(rows: list[dict], table_id: str) -> str:
    """Every row as one table line, one column per key seen."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return (
        f'<table id="{table_id}"><thead><tr>'
        + "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        + "</tr></thead><tbody>"
        + "".join("<tr>" + "".join(_td(row.get(c)) for c in columns) + "</tr>" for row in rows)
        + "</tbody></table>"
    )


def reid_html(reid: dict) -> str:
    metrics = list(reid["plaintext"])
    rows = [("plaintext", reid["plaintext"]), *sorted(reid["decrypted"].items(), key=lambda kv: cipher_rank(kv[0]))]
    head = "".join(f"<th>{html.escape(m)}</th>" for m in metrics) + "<th>bit-exact decryption</th><th>same figures</th>"
    body = []
    for name, figures in rows:
        label = "plaintext" if name == "plaintext" else f"{name} → decrypted"
        checks = (
            "<td>–</td><td>–</td>"
            if name == "plaintext"
            else "".join(
                f'<td class="{"ok" if figures[k] else "bad"}">{fmt(figures[k])}</td>'
                for k in ("bit_exact", "same_figures")
            )
        )
        body.append(
            f'<tr><td class="name">{html.escape(label)}</td>'
            + "".join(f"<td>{fmt(figures.get(m))}</td>" for m in metrics)
            + checks
            + "</tr>"
        )
    return (
        f'<table id="reid"><thead><tr><th class="name">features</th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
        f'<p class="note">The victim\'s own job: {reid["n_query"]} user queries against a gallery of '
        f"{reid['n_gallery']} (Market-1501 protocol). Each cipher encrypts the features with a fresh key and "
        "decrypts them; the figures are recomputed from the decrypted features.</p>"
    )


def key_value_table(items: dict, table_id: str) -> str:
    return (
        f'<table id="{table_id}"><tbody>'
        + "".join(
            f'<tr><td class="name">{html.escape(str(k))}</td><td class="name">'
            + (f"<code>{html.escape(json.dumps(v))}</code>" if isinstance(v, (dict, list)) else fmt(v))
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
        + "".join(f'<tr><td class="name">{label(k)}</td><td>{fmt(v, 1)}</td></tr>' for k, v in timings.items())
        + "</tbody></table>"
    )


def section(title: str, anchor: str, content: str | None, failure: str | None) -> str:
    failed = f'<div class="failed">This stage did not complete: {html.escape(failure)}</div>' if failure else ""
    return f'<section id="{anchor}"><h2>{title}</h2>{failed}{content or ""}</section>'
