"""Pedestrian attribute files (Lin et al.): ``market_attribute.mat`` / ``duke_attribute.mat``.

Labels are per identity. The ``.mat`` stores 1 = no / first option, 2 = yes /
second option (age 1-4), 0 = missing, and colours as one-hot columns. We apply
the paper's post-processing: classes become 0-based, and the colour columns
collapse into one ``up_colour`` / ``down_colour`` class each.

Fields are read by name, never by position: the train and test tables list them
in different orders. Colour classes follow the fixed order of ``SCHEMAS`` (the
README's order), not the file's column order, so a class index means the same
colour in both splits.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..errors import ShuffleBitsError

NO_YES = ["no", "yes"]
MAT_HEADER_TEXT = 116  # bytes of free text at the start of a MAT 5 file
MAT_DESCRIPTION = b"MATLAB 5.0 MAT-file, written by shufflebits"


@dataclass(frozen=True)
class AttributeSchema:
    """Names, classes and ``.mat`` encoding of one dataset's attributes."""

    mat_key: str
    plain: dict[str, list[str]]  # field name -> class names (file value k+1 is class k)
    colours: dict[str, tuple[str, list[str]]]  # output name -> (field prefix, colours in class order)

    @property
    def names(self) -> list[str]:
        return [*self.plain, *self.colours]

    @property
    def class_names(self) -> dict[str, list[str]]:
        out = dict(self.plain)
        out.update({name: list(colours) for name, (_, colours) in self.colours.items()})
        return out

    @property
    def num_classes(self) -> dict[str, int]:
        return {name: len(classes) for name, classes in self.class_names.items()}


SCHEMAS = {
    "market": AttributeSchema(
        mat_key="market_attribute",
        plain={
            "gender": ["male", "female"],
            "hair": ["short", "long"],
            "up": ["long sleeve", "short sleeve"],
            "down": ["long lower body", "short lower body"],
            "clothes": ["dress", "pants"],
            "hat": NO_YES,
            "backpack": NO_YES,
            "bag": NO_YES,
            "handbag": NO_YES,
            "age": ["young", "teenager", "adult", "old"],
        },
        colours={
            "up_colour": ("up", ["black", "white", "red", "purple", "yellow", "gray", "blue", "green"]),
            "down_colour": (
                "down",
                ["black", "white", "pink", "purple", "yellow", "gray", "blue", "green", "brown"],
            ),
        },
    ),
    "duke": AttributeSchema(
        mat_key="duke_attribute",
        plain={
            "gender": ["male", "female"],
            "top": ["short", "long"],
            "boots": NO_YES,
            "hat": NO_YES,
            "backpack": NO_YES,
            "bag": NO_YES,
            "handbag": NO_YES,
            "shoes": ["dark", "light"],
        },
        colours={
            "up_colour": ("up", ["black", "white", "red", "purple", "gray", "blue", "green", "brown"]),
            "down_colour": ("down", ["black", "white", "red", "gray", "blue", "green", "brown"]),
        },
    ),
}

AttributeTable = dict[str, dict[int, dict[str, int]]]  # split -> pid -> name -> class


def get_schema(dataset: str) -> AttributeSchema:
    if dataset not in SCHEMAS:
        raise ShuffleBitsError(f"unknown attribute dataset {dataset!r}; expected one of {sorted(SCHEMAS)}")
    return SCHEMAS[dataset]


def load_attributes(mat_path: str | os.PathLike, dataset: str = "market", strict: bool = False) -> AttributeTable:
    """Read an attribute ``.mat`` into ``{"train"|"test": {pid: {name: class}}}``.

    A colour class is set only for identities with exactly one colour marked 2;
    others get -1 for that column but keep every other label (the paper drops
    them; masking keeps their images usable for the remaining attributes).
    ``strict=True`` drops those identities as the paper does. A 0 in any field
    (e.g. Duke's two unlabelled ``top`` values) becomes -1.
    """
    schema = get_schema(dataset)
    path = Path(mat_path)
    if not path.is_file():
        raise ShuffleBitsError(f"attribute file {path} not found")
    import scipy.io  # here, not at the top: importing shufflebits.data (the image decoder) stays light

    try:
        contents = scipy.io.loadmat(str(path))
    except Exception as error:  # scipy raises many types for a bad file
        raise ShuffleBitsError(f"cannot read attribute file {path}: {error}") from error
    if schema.mat_key not in contents:
        found = [key for key in contents if not key.startswith("__")]
        raise ShuffleBitsError(f"{path} has no '{schema.mat_key}' struct (found {found}); is it a {dataset} file?")
    try:
        root = contents[schema.mat_key][0, 0]
        return {split: _read_split(root[split][0, 0], schema, strict, f"{path}:{split}") for split in ("train", "test")}
    except (ValueError, IndexError, TypeError) as error:
        raise ShuffleBitsError(f"{path} does not have the {dataset} attribute layout: {error}") from error


def _read_split(table, schema: AttributeSchema, strict: bool, where: str) -> dict[int, dict[str, int]]:
    fields = set(table.dtype.names or ())

    def column(name: str) -> np.ndarray:
        if name not in fields:
            raise ShuffleBitsError(f"{where} lacks the field '{name}'")
        return np.asarray(table[name]).reshape(-1).astype(np.int64)

    if "image_index" not in fields:
        raise ShuffleBitsError(f"{where} lacks the field 'image_index'")
    pids = [int(np.asarray(cell).reshape(-1)[0]) for cell in np.asarray(table["image_index"]).reshape(-1)]
    classes: dict[str, np.ndarray] = {}
    for name, class_names in schema.plain.items():
        values = column(name)
        classes[name] = np.where((values >= 1) & (values <= len(class_names)), values - 1, -1)
    for name, (prefix, colours) in schema.colours.items():
        present = {f for f in fields if f.startswith(prefix) and len(f) > len(prefix)}
        expected = {prefix + colour for colour in colours}
        if present != expected:
            raise ShuffleBitsError(f"{where}: colour fields {sorted(present)} differ from {sorted(expected)}")
        marked = np.stack([column(prefix + colour) == 2 for colour in colours], axis=1)
        classes[name] = np.where(marked.sum(axis=1) == 1, marked.argmax(axis=1), -1)
    for name, values in classes.items():
        if len(values) != len(pids):
            raise ShuffleBitsError(f"{where}: field '{name}' has {len(values)} entries for {len(pids)} identities")
    out = {}
    for row, pid in enumerate(pids):
        labels = {name: int(values[row]) for name, values in classes.items()}
        if strict and any(labels[name] < 0 for name in schema.colours):
            continue
        out[pid] = labels
    return out


def save_attributes(path: str | os.PathLike, tables: AttributeTable, dataset: str = "market") -> None:
    """Write ``{"train"|"test": {pid: {name: class}}}`` as the original ``.mat`` layout.

    The inverse of ``load_attributes``: class k is stored as k+1, -1 as 0, and a
    missing colour as no colour marked. Identities are written as 4-digit strings.
    """
    import scipy.io  # lazy, as in load_attributes

    schema = get_schema(dataset)
    struct = {}
    for split in ("train", "test"):
        table = tables.get(split, {})
        pids = sorted(table)
        fields: dict[str, np.ndarray] = {}
        for name in schema.plain:
            fields[name] = np.array([[table[pid].get(name, -1) + 1 for pid in pids]], dtype=np.uint8)
        for name, (prefix, colours) in schema.colours.items():
            for index, colour in enumerate(colours):
                marked = [table[pid].get(name, -1) == index for pid in pids]
                fields[prefix + colour] = np.array([[2 if m else 1 for m in marked]], dtype=np.uint8)
        index_cell = np.empty((1, len(pids)), dtype=object)
        for column, pid in enumerate(pids):
            index_cell[0, column] = f"{pid:04d}"
        fields["image_index"] = index_cell
        struct[split] = fields
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {schema.mat_key: struct})
    data = bytearray(buffer.getvalue())
    data[:MAT_HEADER_TEXT] = MAT_DESCRIPTION.ljust(MAT_HEADER_TEXT)  # no timestamp: same tables, same bytes
    with atomic_write(path) as handle:
        handle.write(bytes(data))
