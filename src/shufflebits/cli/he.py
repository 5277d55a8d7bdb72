"""``ckks-keygen`` and ``ckks-encrypt``: a CKKS key holder's key and its encrypted, searchable gallery.

``shufflebits reid --gallery G --key K`` with a CKKS gallery plays both roles:
the matcher scores ciphertexts with the gallery's public context, the key holder
(``--key``) decrypts the scores and releases a ranking.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ShuffleBitsError


def register(subparsers) -> None:
    keygen = subparsers.add_parser("ckks-keygen", help="create a CKKS key file (TenSEAL; 0600, never overwritten)")
    keygen.add_argument("--out", required=True, type=Path)
    keygen.set_defaults(func=keygen_command)
    encrypt = subparsers.add_parser(
        "ckks-encrypt", help="encrypt a plaintext gallery feature file as a column-packed CKKS gallery (.npz)"
    )
    encrypt.add_argument("--key", required=True, type=Path)
    encrypt.add_argument("--features", required=True, type=Path, help="plaintext .npz/.npy features or .parquet store")
    encrypt.add_argument("--metric", choices=("euclidean", "cosine"), default="euclidean")
    encrypt.add_argument("--out", required=True, type=Path)
    encrypt.set_defaults(func=encrypt_command)


def keygen_command(args: argparse.Namespace) -> int:
    from ..ciphers.ckks import generate_key
    from ..ciphers.ckks_files import save_key

    key = generate_key()
    save_key(args.out, key)
    print(f"wrote {args.out} (ckks, fingerprint {key.fingerprint})")
    return 0


def encrypt_command(args: argparse.Namespace) -> int:
    from ..ciphers.ckks import encrypt_gallery
    from ..ciphers.ckks_files import load_key, save_gallery

    key = load_key(args.key)
    loaded = plain_features(args.features)
    gallery = encrypt_gallery(key, loaded.features, metric=args.metric)
    save_gallery(args.out, key, gallery, image_paths=loaded.image_paths, pids=loaded.pids, camids=loaded.camids)
    print(f"wrote {args.out} ({gallery.count} templates, {gallery.bytes_per_template:,.0f} bytes each)")
    return 0


def plain_features(path: Path):
    from ..ciphers.matching import is_encrypted_file
    from ..features import load_features
    from ..stores import is_store, read_store

    if is_store(path):
        return read_store(path)
    if is_encrypted_file(path):
        raise ShuffleBitsError(f"{path} is encrypted: CKKS takes plaintext features (decrypt them first)")
    return load_features(path)


def ckks_reid(args) -> tuple[dict, str]:
    """Rank a plaintext query against a CKKS gallery: matcher scores ciphertexts, key holder releases ranks."""
    from ..ciphers.ckks import KeyHolder, score
    from ..ciphers.ckks_files import load_gallery, load_key

    if args.key is None:
        raise ShuffleBitsError(f"{args.gallery} is a CKKS gallery: pass the key holder's --key to decrypt the scores")
    gallery, passthrough = load_gallery(args.gallery)  # the matcher: no key
    query = plain_features(Path(args.query))
    if args.metric is not None and args.metric != gallery.metric:
        raise ShuffleBitsError(f"{args.gallery} was encrypted for {gallery.metric} ranking, not {args.metric}")
    holder = KeyHolder(load_key(args.key))
    load_gallery(args.gallery, holder.key)  # the key holder checks the file's tag before releasing anything
    release = holder.release(score(gallery, query.features), top_k=gallery.count)
    if query.pids is None or query.camids is None or "pids" not in passthrough or "camids" not in passthrough:
        raise ShuffleBitsError("query and gallery need pids/camids; extract them from Market-style image names")
    labels = (query.pids, passthrough["pids"], query.camids, passthrough["camids"])
    return {"order": release.ids, "labels": labels}, gallery.metric
