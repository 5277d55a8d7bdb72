"""The page's images: matplotlib figures and reconstruction grids as PNG data URIs."""

from __future__ import annotations

import base64
import html
import io

import numpy as np

from ..load import load_text
from ..numbers import figure
from .sections import PROTECTION_TITLES, throughput_table
from .select import THROUGHPUT, cipher_rank, feature_label, frontier_points, measured, row_label


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure_uri(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return _png_uri(buffer.getvalue())


def reconstruction_html(grids: dict) -> str:
    """The attack's image grids (original | reconstruction), one per (cipher, attack), embedded."""
    if not grids:
        return "<p>No reconstruction images were made by the attack stage.</p>"
    from ...attacks.reconstruction_eval import grid_png

    shown = []
    for key in sorted(grids, key=lambda key: (cipher_rank(key[0]), key[1])):
        label = html.escape(f"{key[0]}: {key[1]}")
        uri = _png_uri(grid_png(grids[key]))
        shown.append(f'<figure><img class="grid" src="{uri}" alt="{label}"><figcaption>{label}</figcaption></figure>')
    note = (
        '<p class="note">Each grid: pairs of a user image (left) and what the attack rebuilt from its leaked '
        "features (right).</p>"
    )
    return note + "\n".join(shown)


SERIES_UNITS = {  # y-axis labels of the training history's series
    "loss": "loss (identity + triplet)",
    "id_loss": "identity loss (cross-entropy)",
    "triplet_loss": "triplet loss (batch-hard)",
    "accuracy": "training accuracy (fraction)",
    "lr": "learning rate at epoch end",
}


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
        if key not in (x_key, "steps", "seconds")
        and all(isinstance(h.get(key), (int, float)) and not isinstance(h.get(key), bool) for h in history)
    ]
    if not series:
        return None
    columns = min(4, len(series))
    rows = -(-len(series) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.8 * columns, 2.7 * rows), squeeze=False)
    for axis in axes.flat[len(series) :]:
        axis.set_visible(False)
    for axis, key in zip(axes.flat, series):
        axis.plot(x, [h[key] for h in history], marker="o", markersize=3)
        axis.set_title(key, fontsize=10)
        axis.set_xlabel(x_key or "step", fontsize=9)
        axis.set_ylabel(SERIES_UNITS.get(key, key), fontsize=9)
        axis.grid(alpha=0.3)
    fig.tight_layout()
    return _figure_uri(fig)


def bar_figure(labels: list[str], values: list[float], xlabel: str, ylabel: str, log: bool = False) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(7.5, 0.35 * len(labels) + 1.0))
    positions = np.arange(len(labels))
    axis.barh(positions, values, color="#3b6ea5")
    axis.set_yticks(positions, labels, fontsize=9)
    axis.invert_yaxis()
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    if log:
        axis.set_xscale("log")
    for position, value in zip(positions, values):
        axis.text(value, position, f" {value:,.1f}" if value >= 1 else f" {value:.3g}", va="center", fontsize=8)
    axis.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _figure_uri(fig)


def _curve(rows: list[dict], cipher: str, metric: str) -> list[dict]:
    return sorted(
        (r for r in rows if r["cipher"] == cipher and r["metric"] == metric and r.get("pairs") is not None),
        key=lambda r: r["pairs"],
    )


def known_pairs_html(rows: list[dict]) -> str | None:
    """Key bits recovered and attribute accuracy through the recovered key, against the number of known pairs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ciphers = sorted({r["cipher"] for r in rows if r.get("pairs") is not None}, key=cipher_rank)
    if not ciphers:
        return None
    plain = next((r for r in rows if r["cipher"] == "plaintext" and r["metric"] == "attr_bacc_mean"), None)
    fig, (bits, attrs) = plt.subplots(1, 2, figsize=(10.5, 3.4))
    table = []
    for cipher in ciphers:
        key, attr = _curve(rows, cipher, "key_bits_recovered"), _curve(rows, cipher, "attr_bacc_mean")
        pairs = [r["pairs"] for r in key]
        (line,) = bits.plot(pairs, [r["value"] for r in key], marker="o", label=f"{cipher}: exact")
        color = line.get_color()
        alone = [r for r in rows if r["cipher"] == cipher and r["metric"] == "key_bits_recovered" and "pairs" not in r]
        for r in alone:  # statistics only, no pairs: the level the pairs start from
            bits.axhline(r["value"], color=color, ls=":", lw=1, label=f"{cipher}: statistics only")
        bits.plot(pairs, [r.get("bits_equivalent") for r in key], ls="--", color=color, label=f"{cipher}: equivalent")
        attrs.plot([r["pairs"] for r in attr], [r["value"] for r in attr], marker="o", color=color, label=cipher)
        accuracy = {r["pairs"]: r["value"] for r in attr}
        table.extend((cipher, r, accuracy.get(r["pairs"])) for r in key)
    if plain is not None:
        attrs.axhline(plain["value"], color="black", lw=1, label="plaintext")
        attrs.axhline(plain["chance"], color="grey", lw=1, ls=":", label="chance (constant guess)")
    for axis, ylabel in ((bits, "bit positions of 32"), (attrs, "mean balanced accuracy")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("known plaintext–ciphertext pairs")
        axis.set_ylabel(ylabel)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    bits.set_title("key recovered", fontsize=10)
    attrs.set_title("attribute inference through the recovered key", fontsize=10)
    fig.tight_layout()
    head = "".join(
        f"<th>{words}</th>"
        for words in (
            "pairs",
            "bit positions exact (of 32)",
            "equivalent on the users' data",
            "fixed by the pairs alone",
            "users' words decrypted bit-exactly",
            "attacker's held-out words decrypted bit-exactly",
            "attribute accuracy",
        )
    )
    body = "".join(
        f'<tr><td class="name">{html.escape(cipher)}</td>'
        + "".join(
            f"<td>{html.escape(figure(value, digits))}</td>"
            for value, digits in (
                (r["pairs"], 0),
                (r["value"], 1),
                (r.get("bits_equivalent"), 1),
                (r.get("bits_determined"), 1),
                (r.get("words_exact"), 4),
                (r.get("validation"), 4),
                (accuracy, 3),
            )
        )
        + "</tr>"
        for cipher, r, accuracy in table
    )
    note = (
        '<p class="note">The attacker encrypts its own images through the black box, so it holds plaintext–'
        "ciphertext pairs under the users' key. Each pair pins a ciphertext bit position to the plaintext "
        "positions whose bits match on every pair; positions the pairs leave tied are placed by ciphertext "
        'statistics. "Equivalent": the recovered position holds the same bit as the true one on every user '
        "value, so it decrypts alike (bit columns that never differ on this model's features cannot be told "
        "apart by any attack).</p>"
    )
    return (
        f'<figure><img src="{_figure_uri(fig)}" alt="known-pair key recovery"></figure>'
        f'<table id="known-pairs-table"><thead><tr><th class="name">cipher</th>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>{note}"
    )


SCORE_REVEAL = (("score_reveal_cosine", "revealed scores"), ("score_reveal_topk_cosine", "top-{top_k} ids only"))


def score_reveal_html(rows: list[dict]) -> str | None:
    """Template recovery from what a homomorphic scheme's key holder releases, per number of enrolled templates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = [r for r in rows if r["metric"] == SCORE_REVEAL[0][0]]
    if not found:
        return None
    fig, axis = plt.subplots(figsize=(6, 3.4))
    table = []
    for revealed in sorted(found, key=lambda r: cipher_rank(r["cipher"])):
        cipher = revealed["cipher"]
        by_metric = {r["metric"]: r for r in rows if r["cipher"] == cipher}
        for metric, label in SCORE_REVEAL:
            row = by_metric[metric]
            counts, cosines = zip(*row["curve"], strict=True)
            name = f"{cipher}: {label.format(top_k=row['top_k'])}"
            axis.plot(counts, cosines, marker="o", label=name)
            success = dict(map(tuple, row["success_curve"]))
            table.extend((name, n, cosine, success.get(n)) for n, cosine in row["curve"])
        axis.axhline(revealed["chance"], color="grey", lw=1, ls=":", label="chance (the attacker's mean template)")
    axis.set_xscale("log", base=2)
    axis.set_xlabel("attacker templates enrolled in the encrypted gallery")
    axis.set_ylabel("cosine of recovered to true query")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    fig.tight_layout()
    body = "".join(
        f'<tr><td class="name">{html.escape(name)}</td>'
        + "".join(f"<td>{html.escape(figure(value, digits))}</td>" for value, digits in ((n, 0), (cos, 3), (ok, 3)))
        + "</tr>"
        for name, n, cos, ok in table
    )
    first = found[0]
    note = (
        '<p class="note">The attacker enrols its own templates (features it knows) and sees, for each user query, '
        "what the key holder releases: every similarity score, or only the top-k gallery ids (the default). From "
        "scores it takes the posterior mean under its own features' prior (attack score-reveal); from ids, the mean "
        "of its own templates among them. Accepted: the recovered template matches the user's query above the "
        f"threshold of FMR 1e-3 ({html.escape(figure(first['threshold']))} cosine). {first['n']} queries, "
        f"{first['n_gallery']} gallery templates, decrypted CKKS scores.</p>"
    )
    head = "".join(f"<th>{words}</th>" for words in ("enrolled", "cosine", "accepted (FMR 1e-3)"))
    return (
        f'<figure><img src="{_figure_uri(fig)}" alt="template recovery from revealed scores"></figure>'
        f'<table id="score-reveal-table"><thead><tr><th class="name">released</th>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>{note}"
    )


INVERSION_CURVES = (  # metric, the x axis, the table's word for a count
    ("known_pair_cosine", "known plaintext–ciphertext pairs (the attacker's own images)", "pairs"),
    ("ciphertext_only_cosine", "users' ciphertexts seen, no pairs", "ciphertexts"),
)


def inversion_curves_html(rows: list[dict]) -> str | None:
    """Cosine of inverted to true user features against known pairs and against ciphertexts seen, per cipher."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        (metric, xlabel, word, sorted(found, key=lambda r: cipher_rank(r["cipher"])))
        for metric, xlabel, word in INVERSION_CURVES
        if (found := [r for r in rows if r["metric"] == metric and r.get("curve")])
    ]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.4 * len(panels), 3.4), squeeze=False)
    colours = {}
    table = []
    for axis, (metric, xlabel, word, found) in zip(axes.flat, panels):
        for row in found:
            counts, cosines = zip(*row["curve"], strict=True)
            colour = colours.setdefault(row["cipher"], f"C{len(colours)}")
            axis.plot(counts, cosines, marker="o", color=colour, label=f"{row['cipher']} ({row['attack']})")
            table.extend((row, word, n, cosine) for n, cosine in row["curve"])
        for index, chance in enumerate(dict.fromkeys(r["chance"] for r in found)):
            label = "chance (the attacker's mean feature as every guess)" if index == 0 else None
            axis.axhline(chance, color="grey", lw=1, ls=":", label=label)
        axis.set_xscale("log", base=2 if metric == "known_pair_cosine" else 10)
        axis.set_xlabel(xlabel)
        axis.set_ylabel("cosine of inverted to true features")
        axis.set_title(PROTECTION_TITLES[metric].split("<br>")[0], fontsize=10)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    fig.tight_layout()
    body = "".join(
        f'<tr><td class="name">{html.escape(row["cipher"])}</td><td class="name">{html.escape(row["attack"])}</td>'
        f"<td>{html.escape(figure(n))} {word}</td><td>{html.escape(figure(cosine, 3))}</td>"
        f"<td>{html.escape(figure(row['chance'], 3))}</td></tr>"
        for row, word, n, cosine in table
    )
    head = "".join(f"<th>{words}</th>" for words in ("given", "cosine to the user's features", "chance"))
    first = panels[0][3][0]
    note = (
        '<p class="note">Each point: the attack fitted on that many known pairs (left) or on that many of the users\' '
        "ciphertexts and the attacker's own plaintext features (right), then applied to the users' "
        f"{html.escape(figure(first['n']))} query ciphertexts; the figure is the mean cosine of what it recovers to "
        "the true features. Chance: the attacker's mean plaintext feature given as everyone's guess. The "
        "ciphertext-only curve stops at the users' ciphertexts of this run; "
        "<code>scripts/ciphertext_only_curve.py</code> runs the same attacks on 1,000 to 100,000.</p>"
    )
    return (
        f'<figure><img src="{_figure_uri(fig)}" alt="inversion of searchable ciphertexts"></figure>'
        f'<table id="inversion-curves-table"><thead><tr><th class="name">cipher</th><th class="name">attack</th>'
        f"{head}</tr></thead><tbody>{body}</tbody></table>{note}"
    )


def throughput_html(rows: list[dict]) -> str:
    """The benchmark's rows as a table, under a bar chart of the measured ones."""
    table = throughput_table(rows)
    shown = measured(rows)
    if not shown:
        return table
    figure = bar_figure(
        [row_label(r) for r in shown],
        [float(r[THROUGHPUT]) for r in shown],
        "million float32 per second (log scale)",
        "cipher or baseline [kernel]",
        log=True,
    )
    return f'<figure><img src="{figure}" alt="cipher throughput"></figure>' + table


SWEEP_STYLES = {"dcpe": ("s", "#b03a2e", "--"), "biohash": ("^", "#2e5eb0", ":")}  # marker, line colour, line style
PANELS = ("attr_bacc_mean", "unlinkability_dsys")  # the y axes, left and right


def sweep_label(point: dict, short: bool = False) -> str:
    """``β = 0.42 (0.5× distance)`` (``short``: ``β = 0.42``) or ``b = 32``: a sweep point's parameter."""
    if "beta" in point:
        if short:
            return f"β = {point['beta']:.3g}"
        return f"β = {figure(point['beta'], 3)} ({figure(point.get('beta_relative'), 3)}× distance)"
    return f"b = {figure(point['bits'])}" if "bits" in point else ""


def _frontier_figure(points: list[dict], sweep: list[dict]) -> str:
    """Two panels, re-ID rank-1 on x: attribute leakage and D_sys on y; colour = µs per encryption (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    costs = [p["encrypt_us_per_vector"] for p in (*points, *sweep) if (p.get("encrypt_us_per_vector") or 0) > 0]
    norm = LogNorm(min(costs), max(max(costs), 1.01 * min(costs))) if costs else None
    cmap = plt.get_cmap("viridis")
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.2))

    def draw(axis, p, key, marker, size, label, fontsize):
        us = p.get("encrypt_us_per_vector") or 0
        if norm is not None and us > 0:
            axis.scatter(p["reid_rank1"], p[key], color=cmap(norm(us)), marker=marker, s=size, edgecolors="black")
        else:  # plaintext (nothing to encrypt) or no cost measured: hollow
            axis.scatter(p["reid_rank1"], p[key], facecolors="none", marker=marker, s=size, edgecolors="black")
        axis.annotate(label, (p["reid_rank1"], p[key]), fontsize=fontsize, xytext=(4, 3), textcoords="offset points")

    for axis, key in zip(axes, PANELS):
        for p in points:
            if p.get(key) is not None:
                draw(axis, p, key, "o", 60, feature_label(p["cipher"]), 7)
        for scheme in dict.fromkeys(p["cipher"] for p in sweep):
            line = [p for p in sweep if p["cipher"] == scheme and p.get(key) is not None]
            marker, colour, style = SWEEP_STYLES.get(scheme, ("D", "grey", "-."))
            if line:
                x, y = [p["reid_rank1"] for p in line], [p[key] for p in line]
                axis.plot(x, y, color=colour, lw=1, ls=style, label=f"{scheme} sweep")
            for p in line:
                draw(axis, p, key, marker, 36, sweep_label(p, short=True), 6)
        axis.set_xlabel("re-ID rank-1 for the matching side (fraction of queries)")
        axis.set_xlim(-0.03, 1.03)
        axis.grid(alpha=0.3)
    attrs, link = axes
    chance = next((p.get("attr_chance") for p in points if p["cipher"] == "plaintext"), None)
    if chance is not None:
        attrs.axhline(chance, color="grey", lw=1, ls=":", label="chance (constant guess)")
    attrs.set_ylabel("attribute inference (mean balanced accuracy)")
    attrs.set_title("utility against attribute leakage", fontsize=10)
    link.set_ylabel("linkability across keys (D_sys, 0 = unlinkable)")
    link.set_title("utility against linkability", fontsize=10)
    link.set_ylim(-0.03, 1.03)
    for axis in axes:
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7, loc="best")
    if norm is not None:
        from matplotlib.ticker import FuncFormatter, NullFormatter

        bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=list(axes), pad=0.02)
        plain_numbers = FuncFormatter(lambda value, _: f"{value:g}")
        bar.ax.yaxis.set_major_formatter(plain_numbers)  # 1, 10, 100 rather than 10^0, 10^1, 10^2
        bar.ax.yaxis.set_minor_formatter(plain_numbers if norm.vmax < 10 * norm.vmin else NullFormatter())
        bar.set_label("encryption cost (µs per vector, log scale; hollow: none)", fontsize=8)
    return _figure_uri(fig)


FRONTIER_COLUMNS = (
    ("reid_rank1", "re-ID rank-1<br>(fraction of queries)", 3),
    ("attr_bacc_mean", "attribute inference<br>(mean balanced accuracy)", 3),
    ("attr_chance", "its chance level<br>(constant guess)", 3),
    ("unlinkability_dsys", "linkability across keys<br>(D_sys, 0–1)", 3),
    ("encrypt_us_per_vector", "encryption<br>(µs per vector)", 2),
    ("bytes_per_vector", "storage<br>(bytes per vector)", 0),
)


def frontier_html(results: dict) -> str | None:
    """The frontier figure and its table, from the leakage and cost rows and the study's sweep; None without them."""
    points = frontier_points(results.get("leakage") or [], results.get("cost"))
    frontier = results.get("frontier") or {}
    sweep = [
        {**p, "reid_rank1": p["reid_rank1_ciphertext"], "attr_chance": p.get("attr_chance_mean")}
        for p in frontier.get("points") or []
    ]
    if not points and not sweep:
        return None
    uri = _frontier_figure(points, sweep)
    lines = [(feature_label(p["cipher"]), "as catalogued", p["utility_source"], p) for p in points]
    lines += [(p["cipher"], sweep_label(p), "on ciphertexts", p) for p in sweep]
    head = '<th class="name">features</th><th class="name">parameter</th><th class="name">rank-1 measured</th>'
    head += "".join(f"<th>{words}</th>" for _, words, _ in FRONTIER_COLUMNS)
    body = "".join(
        f'<tr><td class="name">{html.escape(name)}</td><td class="name">{html.escape(parameter)}</td>'
        f'<td class="name">{html.escape(source)}</td>'
        + "".join(f"<td>{html.escape(figure(p.get(key), digits))}</td>" for key, _, digits in FRONTIER_COLUMNS)
        + "</tr>"
        for name, parameter, source, p in lines
    )
    probe = (
        "Sweep points' attribute inference: a cheap probe (the attribute MLP with few epochs on the attacker's "
        "own ciphertexts under the users' key, in the scheme's matching view, early-stopped on the attacker's "
        "held-out identities), weaker than the matrix's attacks, so a lower bound."
        if frontier.get("attribute_probe")
        else "The sweep ran without the attribute probe, so its points appear on the right panel only."
    )
    sample = {"load_1min": frontier.get("load_average"), "cpu_count": frontier.get("cpu_count")}
    timed = f" Sweep timed under {html.escape(load_text(sample))}." if sample["cpu_count"] else ""
    note = (
        '<p class="note">Circles: each cipher as the leakage matrix ran it (utility: rank-1 on ciphertexts for a '
        "matchable cipher; for a bit-exact one the key holder's rank-1 after decryption, which is plaintext's; "
        "leakage: the matrix's validation-chosen attribute cell and its D_sys). Squares and triangles: the "
        "study's sweep of DCPE's β (as a multiple of the median distance between different people's features) "
        "and BioHash's bits b, on the same users, keys and nonces from the seed. "
        f"{probe} Colour: µs per encryption (circles: the cost table; sweep points: the median of three "
        "encryptions of the users' gallery; hollow: plaintext, nothing to encrypt)." + timed + "</p>"
    )
    return (
        f'<figure><img src="{uri}" alt="utility, leakage and cost frontier"></figure>'
        f'<table id="frontier-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}'
    )


def build_figures(results: dict, grids: dict) -> dict[str, str]:
    """The page's images (data URIs) from the results and the attack stage's reconstruction grids.

    Separate from ``render_html`` so the study can time it as the report stage.
    """
    figures = {}
    if results.get("leakage"):
        figures["reconstruction"] = reconstruction_html(grids)
        pairs = known_pairs_html(results["leakage"])
        if pairs:
            figures["known_pairs"] = pairs
        inversions = inversion_curves_html(results["leakage"])
        if inversions:
            figures["inversion_curves"] = inversions
        revealed = score_reveal_html(results["leakage"])
        if revealed:
            figures["score_reveal"] = revealed
    history = results.get("training_history")
    if history:
        uri = training_figure(history)
        planned = results["environment"]["profile"]["epochs"]
        epochs = (
            f"<p>{len(history)} of {planned} epochs trained "
            "(training stops early only at the profile's max_minutes).</p>"
        )
        figures["training"] = epochs + (
            f'<figure><img src="{uri}" alt="training curves"></figure>'
            if uri
            else "<p>The training history has no numeric series.</p>"
        )
    if results.get("throughput"):
        figures["throughput"] = throughput_html(results["throughput"])
    frontier = frontier_html(results)
    if frontier:
        figures["frontier"] = frontier
    return figures
