"""What the report shows, and in which order: the attacker's best row per cell, ciphers in catalogue order."""

from __future__ import annotations

from ...ciphers.catalogue import cipher_names

FEATURE_ORDER = ("image", "plaintext", *cipher_names())  # "image": the raw-pixel probe
FEATURE_LABELS = {"image": "image alone (pixels)"}  # what the image shows without any feature vector


def feature_label(name: str) -> str:
    """How the report names a row of the matrix: a cipher, plaintext, or the image itself."""
    return FEATURE_LABELS.get(name, name)


METRIC_ORDER = ("attr_bacc_mean", "recon_cosine_distance", "recon_rank1", "reid_rank1", "key_bits_recovered")
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


THROUGHPUT = "mfloat_per_s"  # the benchmark rows' throughput column (million floats per second)

# The benchmark's columns as the report, the summary and ``shufflebits bench`` head them: (key, words, decimals).
THROUGHPUT_COLUMNS = (
    (THROUGHPUT, "million float32 per second", 1),
    ("ratio_vs_aes_gcm", "× AES-GCM (preallocated output)", 2),
    ("ratio_vs_aes_gcm_allocating", "× AES-GCM (new output each call)", 2),
    ("ratio_vs_reference", "× pure-Python reference", 0),
)

RULE_VALIDATION = "chosen on the attacker's validation split"
RULE_USERS = "best on the users' data (an upper bound)"


def headline_rule(row: dict) -> str:
    """How a matrix cell's attack was chosen: on validation where the row has candidates, else best on users' data."""
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
