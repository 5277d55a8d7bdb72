"""The page's HTML tables: the leakage matrix, re-ID, timings, key-value lists, and how a value is written."""

from __future__ import annotations

import html
import json

import numpy as np

from ..load import load_text, overloaded
from ..numbers import figure
from .select import (
    COST_COLUMNS,
    ISO_ORDER,
    LOWER_IS_BETTER,
    METRIC_ORDER,
    RECONSTRUCTION_ORDER,
    RULE_VALIDATION,
    SEARCH_ORDER,
    THROUGHPUT_COLUMNS,
    beaten_by,
    best_rows,
    cipher_rank,
    feature_label,
    headline_rule,
    is_throughput,
    same_row,
)

METRIC_TITLES = {
    "attr_bacc_mean": "attribute inference<br>(mean balanced accuracy, 0–1)",
    "recon_cosine_distance": "reconstruction<br>(cosine distance of its features to the user's, 0–2; lower = leak)",
    "recon_rank1": "reconstruction used as a query<br>(rank-1, fraction of queries)",
    "reid_rank1": "linking users<br>(re-ID rank-1 on what leaks, fraction of queries)",
    "key_bits_recovered": "key recovery<br>(bit positions placed correctly, of 32)",
}

PROTECTION_TITLES = {
    "reid_rank1_ciphertext": "re-ID on ciphertexts<br>(rank-1, the scheme's comparison)",
    "reid_map_ciphertext": "re-ID on ciphertexts<br>(mAP)",
    "known_pair_cosine": "inversion from known pairs<br>(cosine to the user's features)",
    "ciphertext_only_cosine": "alignment, no pairs<br>(cosine to the user's features)",
    "score_reveal_cosine": "recovery from revealed scores<br>(cosine to the user's features)",
    "score_reveal_topk_cosine": "recovery from top-k ids<br>(cosine to the user's features)",
    "unlinkability_dsys": "linkability across keys<br>(D_sys, 0 = unlinkable)",
    "renewability_rank1": "re-ID across keys<br>(rank-1; chance = renewable)",
    "irreversibility_success": "inverted template accepted<br>(fraction at FMR 0.001)",
}
PROTECTION_TABLES = (
    ("protection-search", "Matching and inverting searchable ciphertexts", SEARCH_ORDER),
    ("protection-iso", "ISO/IEC 30136: unlinkability, renewability, irreversibility", ISO_ORDER),
)
RECONSTRUCTION_TITLES = {  # the reconstruction table's columns
    "recon_cosine_distance": "cosine distance<br>(lower = leak)",
    "recon_rank1": "as a query<br>(rank-1)",
    "recon_success_rate": "accepted as its user<br>(success rate, FMR 1e-3)",
    "recon_rank1_transfer": "as a query, 2nd model<br>(rank-1)",
    "recon_success_rate_transfer": "accepted, 2nd model<br>(success rate)",
    "recon_attr_bacc_mean": "attributes of the image<br>(pixel probe, bacc)",
}

METRIC_WORDS = {  # the same figures, in one line (the full table)
    "attr_bacc_mean": "attribute inference, mean balanced accuracy",
    "attr_bacc": "attribute inference, balanced accuracy",
    "recon_cosine_distance": "reconstruction, cosine distance (lower = leak)",
    "recon_rank1": "reconstruction as query, rank-1",
    "recon_success_rate": "reconstruction accepted as its user at FMR 1e-3 (success-attack rate)",
    "recon_rank1_transfer": "reconstruction as query through a second re-ID model, rank-1",
    "recon_success_rate_transfer": "reconstruction accepted by a second re-ID model at FMR 1e-3",
    "recon_attr_bacc_mean": "attributes of the reconstructed image (pixel probe), mean balanced accuracy",
    "reid_rank1": "linking users, re-ID rank-1",
    "key_bits_recovered": "key recovery, bit positions correct of 32 (user samples: ciphertext words)",
    **{metric: title.replace("<br>", " ") for metric, title in PROTECTION_TITLES.items()},
}


def _pairs(count) -> str:
    """``1 known pair``, ``64 known pairs``."""
    return f"{figure(count)} known pair{'' if count == 1 else 's'}"


SHADED = {
    "attr_bacc_mean",
    "attr_bacc",
    "recon_rank1",
    "recon_success_rate",
    "recon_rank1_transfer",
    "recon_success_rate_transfer",
    "recon_attr_bacc_mean",
    "reid_rank1",
}  # rates in [0, 1], higher = more leak


def fmt(value, digits: int = 3) -> str:
    """``figure(value)`` escaped for HTML (the CLI and terminal print the same text)."""
    return html.escape(figure(value, digits))


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


def _key_recovery(row: dict) -> tuple[str, str]:
    """``24.0 of 32`` and what it means: bit positions placed correctly, over how many ciphertext words."""
    value = f"{figure(row['value'], 1)} of {row.get('of', 32)}"
    source = (
        f"{figure(row.get('n'))} ciphertext words"
        if row.get("pairs") is None
        else f"{_pairs(row['pairs']).replace('known pair', 'known plaintext–ciphertext pair')} "
        f"({figure(row.get('n'))} ciphertext words), ties placed by ciphertext statistics"
    )
    detail = (
        f"bit positions placed correctly (mean over the key's permutations), from {source}; "
        f"a random guess places {figure(row.get('chance'), 0)}"
    )
    if row.get("words_exact") is not None:
        detail += f"; users' words decrypted bit-exactly: {figure(row['words_exact'], 4)}"
    return html.escape(value), html.escape(detail)


def _cell(row: dict | None, compact: bool = False) -> str:
    """One matrix cell; ``compact`` (per-attribute table) keeps the chance level and p-value only."""
    if row is None:
        return "<td>–</td>"
    shade = _advantage(row)
    if row["metric"] == "key_bits_recovered":
        value, detail = _key_recovery(row)
    else:
        value = fmt(row["value"])
        detail = f"chance {fmt(row.get('chance'))}"
        if not compact and isinstance(row.get("chance_ci"), list) and len(row["chance_ci"]) == 2:
            detail += f" (95% {fmt(row['chance_ci'][0])}–{fmt(row['chance_ci'][1])})"
        if row.get("p_value") is not None:
            detail += f" · p {fmt(row['p_value'])}"
        if not compact:
            detail += f" · {fmt(row.get('n'))} user samples"
    if not compact and row.get("attack"):
        detail += f" · {html.escape(str(row['attack']))}"
    if not compact and row.get("pairs") is not None:
        detail += f" · {html.escape(_pairs(row['pairs']))}"
    if not compact and row.get("single_class"):
        left_out = ", ".join(html.escape(str(name)) for name in row["single_class"])
        detail += f" · left out of the mean (one class among the users): {left_out}"
    beaten = beaten_by(row) if not compact else None
    if beaten:
        detail += (
            f'<span class="beaten">chosen on validation; beaten on the users\' data by '
            f"{html.escape(beaten[0])} ({fmt(beaten[1])})</span>"
        )
    return (
        f'<td style="background: rgba(214, 69, 65, {0.55 * shade:.3f})">'
        f'{value}<span class="detail">{detail}</span></td>'
    )


ALL_COLUMNS = (
    "features",
    "attack",
    "figure",
    "value",
    "chance",
    "chance 95% interval",
    "p-value",
    "attacker's validation score",
    "user samples",
    "in the matrix",
)


def _all_rows(rows: list[dict]) -> list[tuple]:
    """Every row of leakage.json, and every candidate attack behind a validation-chosen row, with its place."""
    best = best_rows(rows)
    lines = []
    for row in rows:
        metric = METRIC_WORDS.get(row["metric"], row["metric"])
        if row.get("attribute") is not None:
            metric += f": {row['attribute']}"
        ci = row.get("chance_ci")
        interval = f"{figure(ci[0])}–{figure(ci[1])}" if isinstance(ci, list) and len(ci) == 2 else None
        cell = best.get((row["cipher"], row["metric"]))
        headline = same_row(cell, row)
        candidates = row.get("candidates")
        if candidates:
            sign, word = (-1.0, "lower") if row["metric"] in LOWER_IS_BETTER else (1.0, "higher")

            def better(value, sign=sign, reference=row["value"]) -> bool:
                return sign * value > sign * reference

            for attack, candidate in candidates.items():
                chosen = attack == row["attack"]
                place = (
                    (f"yes: {RULE_VALIDATION}" if headline else f"no: {cell['attack']} scored {word} on validation")
                    if chosen
                    else f"no: {row['attack']} scored {word} on validation"
                    + (f" (but this attack is {word} on the users' data)" if better(candidate["value"]) else "")
                )
                lines.append(
                    (
                        row["cipher"],
                        attack,
                        metric,
                        candidate["value"],
                        row.get("chance"),
                        interval if chosen else None,
                        row.get("p_value") if chosen else None,
                        candidate.get("validation"),
                        row.get("n"),
                        place,
                    )
                )
            continue
        if row.get("attribute") is not None:
            place = "per-attribute table (the attack chosen for the mean)"  # shown there, not in the matrix
        elif headline:
            place = f"yes: {headline_rule(row)}"
        else:
            place = f"no: the cell shows {cell['attack']} ({headline_rule(cell)})"
        value = (
            f"{figure(row['value'], 1)} of {row.get('of', 32)}"
            if row["metric"] == "key_bits_recovered"
            else row["value"]
        )
        pairs = row.get("pairs")
        attack = (
            row["attack"] if pairs is None else f"{row['attack']} ({figure(pairs)} pair{'' if pairs == 1 else 's'})"
        )
        lines.append(
            (
                row["cipher"],
                attack,
                metric,
                value,
                row.get("chance"),
                interval,
                row.get("p_value"),
                row.get("validation"),
                row.get("n"),
                place,
            )
        )
    return lines


def _protection_tables(best: dict, ciphers: list[str]) -> list[str]:
    """The template-protection figures, one small table per group, rows only for ciphers that have them."""
    parts = []
    for table_id, title, order in PROTECTION_TABLES:
        metrics = [m for m in order if any(key[1] == m for key in best)]
        names = [c for c in ciphers if any((c, m) in best for m in metrics)]
        if not metrics:
            continue
        parts.append(f"<h3>{html.escape(title)}</h3>")
        parts.append(
            f'<table id="{table_id}"><thead><tr><th class="name">features</th>'
            + "".join(f"<th>{PROTECTION_TITLES[m]}</th>" for m in metrics)
            + "</tr></thead><tbody>"
            + "".join(
                f'<tr><td class="name">{html.escape(feature_label(c))}</td>'
                + "".join(_cell(best.get((c, m)), compact=True) for m in metrics)
                + "</tr>"
                for c in names
            )
            + "</tbody></table>"
        )
    return parts


def _reconstruction_table(best: dict, ciphers: list[str]) -> str:
    """Every figure of each cipher's one reconstruction (chosen on validation), when more than the matrix shows."""
    metrics = [m for m in RECONSTRUCTION_ORDER if any(key[1] == m for key in best)]
    if not set(metrics) - set(METRIC_ORDER):
        return ""
    shown = [c for c in ciphers if any((c, m) in best for m in metrics)]
    transfer = next((best[k].get("transfer_model") for k in best if k[1] == "recon_rank1_transfer"), None)
    body = "".join(
        f'<tr><td class="name">{html.escape(feature_label(c))}</td>'
        + "".join(_cell(best.get((c, m))) for m in metrics)
        + "</tr>"
        for c in shown
    )
    return (
        "<h3>Reconstruction: does it identify the user? (the attack chosen on the attacker's validation split, "
        "the nn-lookup baseline among the candidates)</h3>"
        '<table id="leakage-reconstruction"><thead><tr><th class="name">features</th>'
        + "".join(f"<th>{RECONSTRUCTION_TITLES[m]}</th>" for m in metrics)
        + f"</tr></thead><tbody>{body}</tbody></table>"
        '<p class="note">Success rate: the fraction of reconstructions whose re-embedded feature matches the '
        "user's own leaked feature above the victim's threshold for a false-match rate of 1e-3 (set on the "
        "users' impostor pairs); chance: the same reconstructions handed to the wrong people. "
        + (
            f"2nd model: the re-ID model {html.escape(str(transfer))}, which the attack never used (transfer). "
            if transfer
            else ""
        )
        + "Attributes of the image: the raw-pixel probe (the image row above) applied to the reconstructions.</p>"
    )


def leakage_html(rows: list[dict]) -> str:
    """The matrix (cipher x metric, best attack per cell), per-attribute table and every row."""
    best = best_rows(rows)
    ciphers = sorted({row["cipher"] for row in rows}, key=cipher_rank)
    metrics = [m for m in METRIC_ORDER if any(key[1] == m for key in best)]
    metrics += sorted(
        {key[1] for key in best} - set(metrics) - set(SEARCH_ORDER) - set(ISO_ORDER) - set(RECONSTRUCTION_ORDER)
    )
    head = "".join(f"<th>{METRIC_TITLES.get(m, html.escape(m))}</th>" for m in metrics)
    body = "".join(
        f'<tr><td class="name">{html.escape(feature_label(c))}</td>'
        + "".join(_cell(best.get((c, m))) for m in metrics)
        + "</tr>"
        for c in ciphers
    )
    parts = [
        '<table id="leakage-matrix"><thead><tr><th class="name">features</th>' + head + "</tr></thead>",
        f"<tbody>{body}</tbody></table>",
        '<p class="note">Each cell: the figure of the attack shown for the attacker, its chance level (random '
        "guessing; with a 95% interval and p-value from a label-permutation test where measured), the number of "
        "user samples and the attack. Which attack a cell shows: of the attacks tried for that figure, the one "
        f"{RULE_VALIDATION} (the same figure on the attacker's own held-out identities: the users' data never "
        "chooses; key recovery: the attacker's held-out words it decrypts bit-exactly). "
        "A cell whose validation-chosen attack is beaten on the users' data by another attack says so; the full "
        "table below lists every attack tried, chosen or not. Shading (rates only): how far the attack beats "
        "chance (none = at chance). Keys and, for this experiment only, per-vector nonces derive from the seed "
        "(deployments draw nonces from the OS); the plaintext and ShuffleBits fixed / per-dimension rows are "
        "tested to repeat exactly with the same seed.</p>",
    ]
    parts.append(_reconstruction_table(best, ciphers))
    parts.extend(_protection_tables(best, ciphers))
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
            + "".join(f"<th>{html.escape(feature_label(c))}</th>" for c in attr_ciphers)
            + "</tr></thead><tbody>"
            + "".join(
                f'<tr><td class="name">{html.escape(a)}</td>'
                + "".join(_cell(table.get((a, c)), compact=True) for c in attr_ciphers)
                + "</tr>"
                for a in attributes
            )
            + "</tbody></table>"
        )
    lines = _all_rows(rows)
    parts.append(
        f"<h3>Every attack tried ({len(lines)} rows: each row of leakage.json, and each candidate attack behind a "
        "validation-chosen cell)</h3>"
        '<table id="leakage-all"><thead><tr>'
        + "".join(f"<th>{html.escape(c)}</th>" for c in ALL_COLUMNS)
        + "</tr></thead><tbody>"
        + "".join("<tr>" + "".join(_td(value) for value in line) + "</tr>" for line in lines)
        + "</tbody></table>"
    )
    return "\n".join(parts)


def throughput_table(rows: list[dict]) -> str:
    """The benchmark's rows with headers in words; size, threads and load once, under the table."""
    bulk = [row for row in rows if is_throughput(row)]
    head = '<th class="name">cipher or baseline</th><th class="name">kernel</th>' + "".join(
        f"<th>{html.escape(words)}</th>" for _, words, _ in THROUGHPUT_COLUMNS
    )
    body = "".join(
        f'<tr><td class="name">{html.escape(str(row["name"]))}</td>'
        f'<td class="name">{html.escape(str(row.get("kernel") or ""))}</td>'
        + "".join(f"<td>{fmt(row.get(key), digits)}</td>" for key, _, digits in THROUGHPUT_COLUMNS)
        + "</tr>"
        for row in bulk
    )
    first = rows[0] if rows else {}
    sample = {"load_1min": first.get("load_average"), "cpu_count": first.get("cpu_count")}
    measured_under = f"; measured under {load_text(sample)}" if sample["cpu_count"] else ""
    busy = overloaded(sample) if sample["cpu_count"] else False
    size, threads = fmt(first.get("size_mib"), 0), fmt(first.get("threads"))
    note = (
        f'<p class="note{" busy" if busy else ""}">{size} MiB of float32 per measurement, best of 3-9 runs, '
        f"torch threads {threads}{html.escape(measured_under)}. "
        "The pure-Python reference is timed on a sample and extrapolated.</p>"
    )
    return f'<table id="throughput"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}' + latency_table(
        [row for row in rows if not is_throughput(row)]
    )


def latency_table(rows: list[dict]) -> str:
    """Single calls (one vector, key setup): fastest, median and slowest, in microseconds."""
    if not rows:
        return ""
    body = "".join(
        f'<tr><td class="name">{html.escape(str(row["name"]))}</td>'
        f'<td class="name">{html.escape(str(row.get("kernel") or ""))}</td>'
        + "".join(f"<td>{fmt(row.get(key), 1)}</td>" for key in ("latency_us_min", "latency_us", "latency_us_max"))
        + "</tr>"
        for row in rows
    )
    return (
        '<table id="latency"><thead><tr><th class="name">single call</th><th class="name">kernel</th>'
        "<th>fastest (µs)</th><th>median (µs)</th><th>slowest (µs)</th></tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def cost_table(rows: list[dict]) -> str:
    """What protection costs: one row per cipher (and plaintext), headers in words with their units."""
    first = rows[0]
    size = {key: figure(first.get(key)) for key in ("gallery", "batch", "dim")}
    head = '<th class="name">features</th><th class="name">how the matching side compares</th>' + "".join(
        f"<th>{words.format(**size)}</th>" for _, words, _ in COST_COLUMNS
    )
    body = "".join(
        f'<tr><td class="name">{html.escape(feature_label(str(row["cipher"])))}</td>'
        f'<td class="name">{html.escape(str(row.get("comparison") or ""))}</td>'
        + "".join(f"<td>{fmt(row.get(key), digits)}</td>" for key, _, digits in COST_COLUMNS)
        + "</tr>"
        for row in sorted(rows, key=lambda row: cipher_rank(str(row["cipher"])))
    )
    sample = {"load_1min": first.get("load_average"), "cpu_count": first.get("cpu_count")}
    busy = overloaded(sample) if sample["cpu_count"] else False
    measured_under = f" Measured under {load_text(sample)}." if sample["cpu_count"] else ""
    note = (
        f'<p class="note{" busy" if busy else ""}">Medians of repeated runs in one process on random '
        f"{size['dim']}-d float32 features. Matchable ciphers compare ciphertexts directly (the gallery kept in "
        "its matching form); the others must be decrypted by the key holder first, and their comparison and "
        "search times include decrypting the query and, for 1:N, the whole gallery. Storage counts the "
        f"ciphertext with its nonce and tag.{html.escape(measured_under)}</p>"
    )
    return f'<table id="cost-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}'


REID_WORDS = {"mAP": "mAP", "mINP": "mINP", "rank1": "rank-1", "rank5": "rank-5", "rank10": "rank-10"}


def reid_html(reid: dict) -> str:
    metrics = list(reid["plaintext"])
    rows = [("plaintext", reid["plaintext"]), *sorted(reid["decrypted"].items(), key=lambda kv: cipher_rank(kv[0]))]
    head = (
        "".join(f"<th>{html.escape(REID_WORDS.get(m, m))} (fraction)</th>" for m in metrics)
        + "<th>bit-exact decryption</th><th>same figures</th>"
    )
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
    plain = reid["plaintext"]
    single = reid.get("matches_per_query") == [1, 1]
    same = plain.get("mAP") is not None and plain.get("mAP") == plain.get("mINP")
    why = ""
    if same and single:
        why = (
            " mAP equals mINP here because every query has exactly one correct match in the gallery: with one "
            "match, average precision and the inverse negative penalty are both 1 / (rank of that match)."
        )
    elif reid.get("matches_per_query"):
        low, high = reid["matches_per_query"]
        why = f" Each query has {low}–{high} correct matches in the gallery (other cameras)."
    return (
        f'<table id="reid"><thead><tr><th class="name">features</th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
        f'<p class="note">The victim\'s own job: {reid["n_query"]} user queries against a gallery of '
        f"{reid['n_gallery']} (Market-1501 protocol). Each cipher encrypts the features with a fresh key and "
        f"decrypts them; the figures are recomputed from the decrypted features.{why}</p>"
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


def timings_html(timings: dict[str, float], stages: dict[str, dict]) -> str:
    """Seconds per stage: this run's, and for a reused (cached) stage the run that computed it, with the load."""
    head = (
        '<tr><th class="name">stage</th><th>seconds this run</th><th>seconds to compute</th>'
        '<th class="name">computed</th><th class="name">load average during the computation</th></tr>'
    )
    body = []
    for name, seconds in timings.items():
        record = stages.get(name) or {}
        if record.get("cached"):
            computed = record.get("computed") or {}
            took, when = (
                computed.get("seconds"),
                f"reused from the cache (computed {computed.get('finished_utc', '?')})",
            )
            load = computed.get("load")
        else:
            took, when, load = seconds, "this run" if record else "", record.get("load")
        busy = ' class="name busy"' if overloaded(load) else ' class="name"'
        body.append(
            f'<tr><td class="name">{html.escape(name)}</td><td>{fmt(seconds, 1)}</td><td>{fmt(took, 1)}</td>'
            f'<td class="name">{html.escape(when)}</td><td{busy}>{html.escape(load_text(load))}</td></tr>'
        )
    return f'<table id="timings"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'


def section(title: str, anchor: str, content: str | None, failure: str | None) -> str:
    failed = f'<div class="failed">This stage did not complete: {html.escape(failure)}</div>' if failure else ""
    return f'<section id="{anchor}"><h2>{title}</h2>{failed}{content or ""}</section>'


def victim_card_html(card: dict | None) -> str:
    """The victim's re-ID on its own world's test split and on a world it never saw, with where they come from."""
    if not card:
        return ""
    worlds = (("own_world", "its own world's test split"), ("user_world", "a user world it never saw"))
    body = "".join(
        f'<tr><td class="name">{label}</td>'
        + "".join(_td(card[world][key]) for key in ("rank1", "mAP", "mINP"))
        + "</tr>"
        for world, label in worlds
    )
    recipe, training = card.get("recipe"), card.get("training")
    origin = html.escape(card["source"])
    if recipe and training:
        origin += (
            f": trained on world seed {recipe['world_seed']} ({recipe['identities']:,} identities, half for "
            f"training) at {recipe['input_size'][0]}x{recipe['input_size'][1]}, {training['epochs']} epochs, "
            f"{fmt(training['wall_seconds'] / 60, 0)} min on {html.escape(training['hardware'])}; "
            f"sha256 {html.escape(card['sha256'][:16])}…"
        )
    return (
        '<table id="victim-card"><thead><tr><th class="name">victim re-ID on</th><th>rank-1</th><th>mAP</th>'
        f'<th>mINP</th></tr></thead><tbody>{body}</tbody></table><p class="note">Victim card ({origin}).</p>'
    )


REALISM_STATISTICS = (
    ("zero_fraction", "exact-zero fraction"),
    ("mean_norm", "mean L2 norm"),
    ("mean_cosine_other_identity", "mean cosine between different identities"),
    ("n", "images"),
)


def realism_html(gauge: dict) -> str:
    """The realism gauge: feature statistics side by side, the domain classifier, the attribute transfer."""
    synthetic, real, gap = gauge["synthetic"], gauge["real"], gauge["domain_classifier"]
    statistics = "".join(
        f'<tr><td class="name">{label}</td>{_td(synthetic[key], 4)}{_td(real[key], 4)}</tr>'
        for key, label in REALISM_STATISTICS
    )
    parts = [
        "<p>The figures above transfer to real data only as far as the synthetic world looks real to the victim. "
        "The same victim's features of the synthetic world and of this run's real images:</p>",
        '<table id="realism-statistics"><thead><tr><th class="name">feature statistic</th><th>synthetic world</th>'
        f"<th>real images</th></tr></thead><tbody>{statistics}</tbody></table>",
        "<p>A linear classifier tells synthetic from real features with balanced accuracy "
        f"{fmt(gap['balanced_accuracy'])} "
        f"({gap['folds']}-fold cross-validation; {fmt(gap['chance'])} means indistinguishable).</p>",
    ]
    transfer = gauge.get("attribute_transfer")
    if transfer is None:
        parts.append(
            "<p>No attribute transfer: the real images carry other attribute labels than the synthetic world's "
            "(Market-1501's).</p>"
        )
        return "".join(parts)
    rows = "".join(
        f'<tr><td class="name">{html.escape(name)}</td>{_td(per["bacc"])}{_td(per["chance"])}<td>{per["n"]:,}</td></tr>'
        for name, per in transfer["attributes"].items()
    )
    parts.append(
        "<p>The attribute attack trained on the synthetic world only, applied to the real images "
        "(balanced accuracy per attribute, beside a constant guess):</p>"
        '<table id="realism-transfer"><thead><tr><th class="name">attribute</th><th>balanced accuracy</th>'
        f"<th>chance</th><th>images</th></tr></thead><tbody>{rows}"
        f'<tr><td class="name"><b>mean</b></td>{_td(transfer["mean"])}{_td(transfer["chance_mean"])}<td></td></tr>'
        "</tbody></table>"
    )
    return "".join(parts)
