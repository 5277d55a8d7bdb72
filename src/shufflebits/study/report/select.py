"""What the report shows, and in which order: the attacker's best row per cell, ciphers in catalogue order."""

from __future__ import annotations

from ...ciphers.catalogue import cipher_names, spec

FEATURE_ORDER = ("image", "plaintext", *cipher_names())  # "image": the raw-pixel probe
FEATURE_LABELS = {"image": "image alone (pixels)"}  # what the image shows without any feature vector


def feature_label(name: str) -> str:
    """How the report names a row of the matrix: a cipher, plaintext, or the image itself."""
    return FEATURE_LABELS.get(name, name)


METRIC_ORDER = ("attr_bacc_mean", "recon_cosine_distance", "recon_rank1", "reid_rank1", "key_bits_recovered")
# Template-protection figures (attacks/protection.py), in tables of their own beside the matrix
SEARCH_ORDER = (
    "reid_rank1_ciphertext",
    "reid_map_ciphertext",
    "known_pair_cosine",
    "ciphertext_only_cosine",
    "score_reveal_cosine",
    "score_reveal_topk_cosine",
)
ISO_ORDER = ("unlinkability_dsys", "renewability_rank1", "irreversibility_success")
# The reconstruction's own table: every figure of the one reconstruction chosen per cipher.
RECONSTRUCTION_ORDER = (
    "recon_cosine_distance",
    "recon_rank1",
    "recon_success_rate",
    "recon_rank1_transfer",
    "recon_success_rate_transfer",
    "recon_attr_bacc_mean",
)


LOWER_IS_BETTER = {"recon_cosine_distance"}  # for the attacker; every other metric: higher is better


def cipher_rank(name: str) -> tuple[int, str]:
    """Sort key: plaintext, then the catalogue's order; unknown names last, by name."""
    return (FEATURE_ORDER.index(name) if name in FEATURE_ORDER else len(FEATURE_ORDER), name)


def best_rows(rows: list[dict]) -> dict[tuple[str, str], dict]:
    """For each (cipher, metric) the attacker's pick, chosen on its own validation split (per-attribute rows excluded).

    Among the rows of a cell that carry a ``validation`` score (the same
    figure on the attacker's held-out data, in the metric's direction) the
    best one wins, the first on ties. A cell whose rows carry none keeps its
    only row, or, for older results, the best on the users' data. The
    returned rows are copies with ``selected_by`` saying which rule chose them.
    """
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        if row.get("attribute") is not None or row.get("value") is None:
            continue
        groups.setdefault((row["cipher"], row["metric"]), []).append(row)
    best = {}
    for (cipher, metric), group in groups.items():
        sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
        scored = [row for row in group if row.get("validation") is not None]
        if scored:
            chosen, rule = max(scored, key=lambda row: sign * row["validation"]), RULE_VALIDATION
        elif len(group) == 1:
            chosen, rule = group[0], RULE_ONLY
        else:
            chosen, rule = max(group, key=lambda row: sign * row["value"]), RULE_USERS
        best[(cipher, metric)] = {**chosen, "selected_by": _cell_rule(chosen, rule)}
    return best


def same_row(a: dict | None, b: dict | None) -> bool:
    """Whether two row dicts are the same row of the matrix (``best_rows`` returns copies)."""
    keys = ("cipher", "metric", "attack", "attribute", "pairs")
    return a is not None and b is not None and all(a.get(k) == b.get(k) for k in keys)


def _cell_rule(row: dict, rule: str) -> str:
    """The cell's rule; a single row that chose among candidates itself keeps the validation rule."""
    return RULE_VALIDATION if rule == RULE_ONLY and row.get("candidates") else rule


THROUGHPUT = "mfloat_per_s"  # the benchmark rows' throughput column (million floats per second)

# The benchmark's columns as the report, the summary and ``shufflebits bench`` head them: (key, words, decimals).
THROUGHPUT_COLUMNS = (
    (THROUGHPUT, "million float32 per second", 1),
    ("ratio_vs_aes_gcm", "× AES-GCM (preallocated output)", 2),
    ("ratio_vs_aes_gcm_allocating", "× AES-GCM (new output each call)", 2),
    ("ratio_vs_reference", "× pure-Python reference", 0),
)

# The cost table's columns (``ciphers.cost`` rows): (key, words with units, decimals); the 1:N column names N itself.
COST_COLUMNS = (
    ("encrypt_us_per_vector", "encryption<br>(µs per vector, in batches of {batch})", 2),
    ("encrypt_us_one", "encrypting one vector<br>(µs per call)", 1),
    ("compare_1to1_us", "one 1:1 comparison<br>(µs, decryption included where needed)", 1),
    ("search_1toN_ms", "1:N search<br>(ms over {gallery} templates)", 2),
    ("bytes_per_vector", "storage<br>(bytes per protected {dim}-d vector)", 0),
)

RULE_VALIDATION = "chosen on the attacker's validation split"
RULE_ONLY = "the only attack"
RULE_USERS = "best on the users' data (an upper bound; no validation score recorded)"


def headline_rule(row: dict) -> str:
    """How a matrix cell's attack was chosen (``best_rows`` records it as ``selected_by``)."""
    if row.get("selected_by"):
        return row["selected_by"]
    return RULE_VALIDATION if row.get("candidates") else RULE_USERS


def beaten_by(row: dict) -> tuple[str, float] | None:
    """The candidate that beat the validation-chosen attack on the users' data (attack, value), if any."""
    candidates = row.get("candidates") or {}
    sign = -1.0 if row["metric"] in LOWER_IS_BETTER else 1.0
    better = {
        attack: c["value"]
        for attack, c in candidates.items()
        if c.get("value") is not None and sign * c["value"] > sign * row["value"]
    }
    if not better:
        return None
    attack = max(better, key=lambda a: sign * better[a])
    return attack, better[attack]


def row_label(row: dict) -> str:
    """``name [kernel]`` for a benchmark row."""
    return f"{row['name']} [{row['kernel']}]" if row.get("kernel") else str(row["name"])


def is_throughput(row: dict) -> bool:
    """A bulk-throughput row of the benchmark (the others time single calls: latency, key setup)."""
    return row.get("kind", "throughput") == "throughput"


def measured(rows: list[dict]) -> list[dict]:
    """The bulk-throughput rows that carry a positive throughput."""
    return [
        row
        for row in rows
        if is_throughput(row) and isinstance(row.get(THROUGHPUT), (int, float)) and row[THROUGHPUT] > 0
    ]


def frontier_points(rows: list[dict], cost: list[dict] | None) -> list[dict]:
    """One point per cipher (and plaintext) for the frontier: utility, attribute leakage, D_sys, cost.

    Utility is re-ID rank-1 for whoever matches: on ciphertexts for a matchable
    cipher (its ``reid_rank1_ciphertext`` row); for a bit-exact invertible one
    the key holder decrypts first and gets the features back bit for bit, so
    its rank-1 is plaintext's ``reid_rank1``. Leakage is the validation-chosen
    ``attr_bacc_mean`` cell and ``unlinkability_dsys``; cost is µs per
    encryption from the cost rows (plaintext: 0, nothing to encrypt).
    """
    best = best_rows(rows)
    costs = {row["cipher"]: row for row in cost or []}
    present = {row["cipher"] for row in rows}
    plain = best.get(("plaintext", "reid_rank1"))
    points = []
    for name in ("plaintext", *cipher_names()):
        if name not in present:
            continue
        if name == "plaintext":
            utility, source = plain, "plaintext features"
        elif spec(name).matchable:
            utility, source = best.get((name, "reid_rank1_ciphertext")), "on ciphertexts"
        elif spec(name).invertible and spec(name).exact:
            utility, source = plain, "after decryption (plaintext's)"
        else:
            continue
        leak, link = best.get((name, "attr_bacc_mean")), best.get((name, "unlinkability_dsys"))
        if utility is None or leak is None:
            continue
        point_cost = costs.get(name, {})
        points.append(
            {
                "cipher": name,
                "reid_rank1": utility["value"],
                "utility_source": source,
                "attr_bacc_mean": leak["value"],
                "attr_chance": leak.get("chance"),
                "unlinkability_dsys": None if link is None else link["value"],
                "encrypt_us_per_vector": point_cost.get("encrypt_us_per_vector"),
                "bytes_per_vector": point_cost.get("bytes_per_vector"),
            }
        )
    return points
