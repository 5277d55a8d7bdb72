"""Loaders for the real dataset layouts: Market-1501, DukeMTMC-reID, MSMT17.

Conventions follow torchreid: camera ids 0-based, identities as in the file
names. Unlike torchreid, Market-1501 junk (``-1``) and distractors (``0000``)
stay in the gallery so the evaluation can apply the standard protocol (junk
ignored, distractors kept); they never get attribute labels.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import ShuffleBitsError
from .attributes import AttributeTable, get_schema, load_attributes
from .records import ImageRecord, ReidDataset

MARKET_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
MARKET_NAME = re.compile(r"^(-1|\d{4})_c(\d)s(\d)_(\d+)_(\d+)\.jpg$")
DUKE_NAME = re.compile(r"^(-1|\d{4})_c(\d+)_f(\d+)\.jpg$")
MSMT_LISTS = {split: f"list_{split}.txt" for split in ("train", "val", "query", "gallery")}
MSMT_VERSIONS = {"MSMT17_V1": ("train", "test"), "MSMT17_V2": ("mask_train_v2", "mask_test_v2")}


def load_market1501(root: str | os.PathLike, attribute_file: str | os.PathLike | None = None) -> ReidDataset:
    """Market-1501 (``PPPP_cCsS_FFFFFF_NN.jpg``), with ``market_attribute.mat`` labels when found.

    ``root`` holds the three image folders, or is the parent of the unpacked
    ``Market-1501-v15.09.15/``. ``attribute_file=None`` uses
    ``market_attribute.mat`` from that folder if it exists.
    """
    return _load_folder_layout(root, "market1501", "market", MARKET_NAME, attribute_file, "Market-1501-v15.09.15")


def load_dukemtmc(root: str | os.PathLike, attribute_file: str | os.PathLike | None = None) -> ReidDataset:
    """DukeMTMC-reID (``PPPP_cC_fFFFFFFF.jpg``), with ``duke_attribute.mat`` labels when found.

    ``root`` holds the three image folders, or is the parent of ``DukeMTMC-reID/``.
    """
    return _load_folder_layout(root, "dukemtmc", "duke", DUKE_NAME, attribute_file, "DukeMTMC-reID")


def _load_folder_layout(
    root, name: str, schema_name: str, pattern: re.Pattern, attribute_file, unpacked: str
) -> ReidDataset:
    root = Path(root)
    if not root.is_dir():
        raise ShuffleBitsError(f"dataset folder {root} does not exist")
    if not (root / MARKET_FOLDERS["train"]).is_dir() and (root / unpacked / MARKET_FOLDERS["train"]).is_dir():
        root = root / unpacked
    missing = [folder for folder in MARKET_FOLDERS.values() if not (root / folder).is_dir()]
    if missing:
        raise ShuffleBitsError(
            f"{root} is not a {name} folder: missing {', '.join(f + '/' for f in missing)} "
            f"(expected {', '.join(f + '/' for f in MARKET_FOLDERS.values())})"
        )
    schema = get_schema(schema_name)
    if attribute_file is None and (root / f"{schema_name}_attribute.mat").is_file():
        attribute_file = root / f"{schema_name}_attribute.mat"
    tables: AttributeTable | None = None
    if attribute_file is not None:
        tables = load_attributes(attribute_file, schema_name)
    splits = {}
    for split, folder in MARKET_FOLDERS.items():
        table = None if tables is None else tables["train" if split == "train" else "test"]
        splits[split] = [_parse_image(path, split, pattern, table, schema.names) for path in _images(root / folder)]
    if not any(splits.values()):
        raise ShuffleBitsError(f"{root} has no .jpg images in {', '.join(MARKET_FOLDERS.values())}/")
    return ReidDataset(
        name=name,
        root=root,
        train=splits["train"],
        query=splits["query"],
        gallery=splits["gallery"],
        attribute_names=schema.names if tables is not None else [],
        num_classes=schema.num_classes if tables is not None else {},
        class_names=schema.class_names if tables is not None else {},
    )


def _images(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.suffix.lower() == ".jpg")


def _parse_image(path: Path, split: str, pattern: re.Pattern, table, names: list[str]) -> ImageRecord:
    match = pattern.match(path.name)
    if match is None:
        raise ShuffleBitsError(f"unexpected image name {path} (expected e.g. {_example(pattern)})")
    pid, camera = int(match.group(1)), int(match.group(2))
    if camera < 1:
        raise ShuffleBitsError(f"camera numbers start at 1, got c{camera} in {path.name}")
    attributes = {}
    if table is not None:
        attributes = dict(table.get(pid, {})) if pid > 0 else {}
        attributes = {name: attributes.get(name, -1) for name in names}
    return ImageRecord(path=path, pid=pid, camid=camera - 1, split=split, attributes=attributes)


def _example(pattern: re.Pattern) -> str:
    return "0002_c1s1_000451_03.jpg" if pattern is MARKET_NAME else "0001_c2_f0046182.jpg"


def load_msmt17(root: str | os.PathLike, include_val: bool = False) -> ReidDataset:
    """MSMT17 from its list files (``relative/path pid`` per line).

    ``root`` holds ``list_*.txt`` with ``train/`` and ``test/`` (V1) or
    ``mask_train_v2/`` and ``mask_test_v2/`` (V2), or is their parent folder.
    The camera is the file name's third ``_`` field. ``include_val`` adds the
    validation images to train (torchreid's ``combineall``; the standard
    protocol leaves them out).
    """
    root = Path(root)
    if not root.is_dir():
        raise ShuffleBitsError(f"dataset folder {root} does not exist")
    base = root
    if not (root / MSMT_LISTS["train"]).is_file():
        candidates = [root / version for version in MSMT_VERSIONS if (root / version / MSMT_LISTS["train"]).is_file()]
        if not candidates:
            raise ShuffleBitsError(
                f"{root} is not an MSMT17 folder: no {MSMT_LISTS['train']} in it or in MSMT17_V1/, MSMT17_V2/"
            )
        base = candidates[0]
    folders = [(base / train, base / test) for train, test in MSMT_VERSIONS.values() if (base / train).is_dir()]
    if not folders:
        raise ShuffleBitsError(f"{base} has no train/ (V1) or mask_train_v2/ (V2) image folder")
    train_dir, test_dir = folders[0]
    train = _read_list(base / MSMT_LISTS["train"], train_dir, "train")
    if include_val:
        train += _read_list(base / MSMT_LISTS["val"], train_dir, "train")
    return ReidDataset(
        name="msmt17",
        root=root,
        train=train,
        query=_read_list(base / MSMT_LISTS["query"], test_dir, "query"),
        gallery=_read_list(base / MSMT_LISTS["gallery"], test_dir, "gallery"),
    )


def _read_list(list_path: Path, image_dir: Path, split: str) -> list[ImageRecord]:
    if not list_path.is_file():
        raise ShuffleBitsError(f"MSMT17 list file {list_path} not found")
    records = []
    for number, line in enumerate(list_path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        fields = Path(parts[0]).name.split("_") if parts else []
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit() or len(fields) < 3 or not fields[2].isdigit():
            raise ShuffleBitsError(
                f"{list_path}:{number}: expected 'PID/PID_NNN_CC_..._N.jpg PID', got {line.strip()!r}"
            )
        records.append(ImageRecord(path=image_dir / parts[0], pid=int(parts[1]), camid=int(fields[2]) - 1, split=split))
    return records
