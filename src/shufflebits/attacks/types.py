"""What the attacker holds: features of an image set, with labels where known."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class LabelledFeatures:
    """Black-box features of one image set, aligned row by row with its labels.

    ``features`` are the victim's plaintext outputs; ciphers are applied by the
    attack code so every cipher sees the same rows. ``images`` are small copies
    of the inputs (for reconstruction attacks), or ``None``.
    """

    features: np.ndarray  # (n, d) float32
    labels: np.ndarray  # (n, a) int64 attribute classes, -1 where missing
    attribute_names: list[str]
    num_classes: list[int]
    pids: np.ndarray  # (n,) int64 identities
    camids: np.ndarray  # (n,) int64 cameras
    images: np.ndarray | None = None  # (n, 3, h, w) float32 in [0, 1]

    def __post_init__(self) -> None:
        n = len(self.features)
        for name in ("labels", "pids", "camids", "images"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"{name} has {len(value)} rows but features have {n}")
        if self.labels.shape[1:] != (len(self.attribute_names),):
            raise ValueError("labels need one column per attribute name")
        if len(self.num_classes) != len(self.attribute_names):
            raise ValueError("num_classes needs one entry per attribute name")

    def __len__(self) -> int:
        return len(self.features)

    def take(self, rows: np.ndarray) -> LabelledFeatures:
        """The labelled rows ``rows``, with their images if there are any."""
        return LabelledFeatures(
            features=self.features[rows],
            labels=self.labels[rows],
            attribute_names=self.attribute_names,
            num_classes=self.num_classes,
            pids=self.pids[rows],
            camids=self.camids[rows],
            images=None if self.images is None else self.images[rows],
        )


@dataclass(frozen=True)
class CkksSample:
    """How many templates the CKKS rows (``attacks.homomorphic``) use: each template encrypted
    alone costs about 14 ms (a seeded SEAL context), each query scored about 70 ms."""

    queries: int = 200  # queries matched through CKKS: one flipped rank-1 is 0.5 points
    wrong_key_queries: int = 100  # of those, matched again under the renewed key
    attacker_pool: int = 1024  # the attacker's templates enrolled beside the users' gallery (prior, score reveal)
    attribute_attacker: int = 500  # attacker templates encrypted one per ciphertext for same-key learning
    link_gallery: int = 300  # gallery templates encrypted one per ciphertext (under B, and A for linking)


@dataclass(frozen=True)
class AttackProfile:
    """How hard the attacks try; the study's profiles (``shufflebits.study.profiles``) hold the presets."""

    mlp_epochs: int
    paper_epochs: int
    hidden: int
    bits_hidden: int  # MLP width on the bit view (32 inputs per feature): its first layer dominates the matrix's time
    recon_epochs: int
    recon_width: int
    recon_variants: tuple[str, ...]
    surrogate_epochs: int
    permutations: int  # label shuffles behind each chance interval
    known_pairs: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)  # pairs the known-pair key recovery is given, each
    recon_queries: int | None = None  # users whose reconstructions are judged (a seeded sample); None: all
    ckks: CkksSample = field(default_factory=CkksSample)


_ROW_FIELDS = ("cipher", "attack", "metric", "value", "chance", "n", "attribute", "pairs")


@dataclass(frozen=True)
class LeakageRow:
    """One figure of the leakage matrix: what ``attack`` reached on ``cipher``, beside its chance level.

    ``pairs``: how many known plaintext–ciphertext pairs the attack was given
    (known-pair rows only). ``details`` holds the metric's extra figures
    (``chance_ci``, ``p_value``, ``validation``, ``candidates``, ...); ``as_dict``
    flattens them, which is the layout of ``leakage.json``.
    """

    cipher: str
    attack: str
    metric: str
    value: float
    chance: float
    n: int
    attribute: str | None = None
    details: dict = field(default_factory=dict)
    pairs: int | None = None

    def as_dict(self) -> dict:
        row = {"cipher": self.cipher, "attack": self.attack, "metric": self.metric}
        if self.attribute is not None:
            row["attribute"] = self.attribute
        if self.pairs is not None:
            row["pairs"] = self.pairs
        row.update(value=self.value, chance=self.chance, n=self.n)
        row.update(self.details)
        return row

    @classmethod
    def from_dict(cls, row: dict) -> LeakageRow:
        details = {k: v for k, v in row.items() if k not in _ROW_FIELDS}
        return cls(
            cipher=row["cipher"],
            attack=row["attack"],
            metric=row["metric"],
            value=row["value"],
            chance=row["chance"],
            n=row["n"],
            attribute=row.get("attribute"),
            details=details,
            pairs=row.get("pairs"),
        )

    def get(self, name: str, default=None):
        """A field or a detail by name (``row.get("p_value")``)."""
        if name in _ROW_FIELDS:
            return getattr(self, name)
        return self.details.get(name, default)


@dataclass(frozen=True)
class LeakageResult:
    """What ``leakage_matrix`` returns: the rows, and reconstruction grids keyed by (cipher, attack).

    Grids are uint8 ``(H, W, 3)`` images (originals above reconstructions), handed
    to the report in memory; ``write_leakage`` also saves them as PNG files.
    ``seconds``: wall time per cipher and per attack (``cipher -> attack -> s``),
    kept apart from the rows so that the rows repeat exactly under one seed.
    """

    rows: tuple[LeakageRow, ...]
    grids: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)
