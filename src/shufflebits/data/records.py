"""Image records and datasets: the one in-memory shape every loader returns.

Identities (``pid``) keep the numbers of the file names (Market-1501: ``-1`` junk,
``0`` distractors) so evaluation can apply the standard protocol; training code
relabels them to ``0..n-1`` itself. Camera ids are 0-based.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import atomic_write

SPLITS = ("train", "query", "gallery")


@dataclass(frozen=True)
class ImageRecord:
    """One image: where it is, who and which camera, and its attribute classes."""

    path: Path
    pid: int
    camid: int
    split: str
    attributes: dict[str, int] = field(default_factory=dict)


@dataclass
class ReidDataset:
    """A re-ID dataset: train / query / gallery records plus the attribute schema."""

    name: str
    root: Path
    train: list[ImageRecord]
    query: list[ImageRecord]
    gallery: list[ImageRecord]
    attribute_names: list[str] = field(default_factory=list)
    num_classes: dict[str, int] = field(default_factory=dict)
    class_names: dict[str, list[str]] = field(default_factory=dict)

    def split(self, name: str) -> list[ImageRecord]:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        return getattr(self, name)

    @property
    def num_train_pids(self) -> int:
        """Number of training identities (the classifier size for ID training)."""
        return len({record.pid for record in self.train})

    def labels(self, records: list[ImageRecord]) -> np.ndarray:
        """``(n, a)`` int64 attribute classes in ``attribute_names`` order, -1 missing."""
        out = np.full((len(records), len(self.attribute_names)), -1, dtype=np.int64)
        for row, record in enumerate(records):
            for column, name in enumerate(self.attribute_names):
                out[row, column] = record.attributes.get(name, -1)
        return out

    def to_rows(self, splits: tuple[str, ...] = SPLITS, labelled_only: bool = False) -> list[dict]:
        """The tidy table: one dict per image (path, pid, camid, split, attributes).

        ``labelled_only`` keeps images whose identity has at least one attribute
        label, the paper's "drop images whose identity has no annotation".
        """
        rows = []
        for split_name in splits:
            for record in self.split(split_name):
                attributes = {name: record.attributes.get(name, -1) for name in self.attribute_names}
                if labelled_only and all(value < 0 for value in attributes.values()):
                    continue
                row = {"path": str(record.path), "pid": record.pid, "camid": record.camid, "split": split_name}
                rows.append({**row, **attributes})
        return rows

    def write_csv(self, path: str | os.PathLike, splits: tuple[str, ...] = SPLITS, labelled_only: bool = False) -> int:
        """Write the tidy table as CSV (atomically); returns the number of rows."""
        rows = self.to_rows(splits, labelled_only)
        columns = ["path", "pid", "camid", "split", *self.attribute_names]
        with atomic_write(path, "w") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        return len(rows)

    def summary(self) -> str:
        """One line: images and identities per split."""
        parts = []
        for split_name in SPLITS:
            records = self.split(split_name)
            parts.append(f"{split_name} {len(records)} images / {len({r.pid for r in records})} ids")
        return f"{self.name}: " + ", ".join(parts)
