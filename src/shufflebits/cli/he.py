"""``ckks-keygen``, ``ckks-encrypt`` and ``ckks-encrypt-query``: a CKKS key holder's key, its encrypted, searchable
gallery and its encrypted queries.

``shufflebits reid --gallery G --key K`` with a CKKS gallery plays both roles:
the matcher scores ciphertexts with the gallery's public context (a plaintext
query, or an encrypted query file), the key holder (``--key``) decrypts the
scores, computes the re-ID figures on its own side from the full ranking and
writes to ``--out`` only what the release mode allows (``release_options``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from ..errors import ShuffleBitsError
from .crypto import add_force, refuse_overwrite

RELEASE_FORMAT = "shufflebits-ckks-release"
RELEASE_VERSION = 1
RELEASE_OPTIONS = ("--top-k", "--threshold", "--reveal-scores", "--out")


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
    add_force(encrypt)
    encrypt.set_defaults(func=encrypt_command)
    query = subparsers.add_parser(
        "ckks-encrypt-query",
        help="encrypt plaintext query features for one CKKS gallery (.npz), so the matcher never sees them",
        description="The key holder encrypts query features for --gallery (its dimension, metric and norm scale): "
        "ceil((d + 1) / 2) full ciphertexts per query, 257 (about 32 MiB) for a 512-d one. "
        "`shufflebits reid --query OUT --gallery GALLERY --key KEY` scores it by ciphertext products. "
        "Pids, camids and image paths travel in the clear beside the ciphertexts, as in the gallery file.",
    )
    query.add_argument("--key", required=True, type=Path)
    query.add_argument("--features", required=True, type=Path, help="plaintext query .npz/.npy features or .parquet")
    query.add_argument("--gallery", required=True, type=Path, help="the CKKS gallery (.npz) the query is for")
    query.add_argument("--out", required=True, type=Path)
    query.add_argument(
        "--rows", type=int, default=None, help="encrypt only the first ROWS queries (each is about 32 MiB); default all"
    )
    add_force(query)
    query.set_defaults(func=encrypt_query_command)


def add_release_options(parser) -> None:
    """``reid``'s options for what a CKKS key holder releases (ignored by no other cipher: refused there)."""
    group = parser.add_argument_group(
        "CKKS release (with a CKKS --gallery and its --key)",
        "The key holder computes rank-1/mAP/mINP on its own side, from the full decrypted ranking; what leaves it "
        "is --out, a JSON file that holds only what the release mode allows: by default the top-1 gallery row "
        "per query.",
    )
    group.add_argument(
        "--top-k",
        type=int,
        metavar="K",
        help="release the K best gallery rows (0-based) per query (default: 1, the library's ckks.TOP_K)",
    )
    group.add_argument(
        "--threshold",
        type=float,
        metavar="T",
        help="cosine galleries only: of the top-K rows, release only those with cosine similarity >= T "
        "(a match / no-match decision: -1 fills the places below T)",
    )
    group.add_argument(
        "--reveal-scores",
        action="store_true",
        help="INSECURE, the score-reveal attack's mode: release every decrypted score (d scores give the "
        "query's features away); refuses --top-k and --threshold",
    )
    group.add_argument(
        "--out", type=Path, metavar="PATH", help="write the release here (.json); without it nothing is released"
    )


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

    refuse_overwrite(args.out, args.force, args.key, args.features)
    key = load_key(args.key)
    loaded = plain_features(args.features)
    gallery = encrypt_gallery(key, loaded.features, metric=args.metric)
    save_gallery(args.out, key, gallery, image_paths=loaded.image_paths, pids=loaded.pids, camids=loaded.camids)
    print(f"wrote {args.out} ({gallery.count} templates, {gallery.bytes_per_template:,.0f} bytes each)")
    return 0


def encrypt_query_command(args: argparse.Namespace) -> int:
    from ..ciphers.ckks import encrypt_query
    from ..ciphers.ckks_files import load_gallery, load_key, save_query

    if args.out.suffix != ".npz":
        raise ShuffleBitsError(f"CKKS query files end in .npz, got {args.out.name}")
    if args.rows is not None and args.rows < 1:
        raise ShuffleBitsError(f"--rows must be at least 1, got {args.rows}")
    refuse_overwrite(args.out, args.force, args.key, args.features, args.gallery)
    key = load_key(args.key)
    gallery, _ = load_gallery(args.gallery, key)
    loaded = plain_features(args.features)
    rows = slice(None, args.rows)
    pids, camids = (None if labels is None else labels[rows] for labels in (loaded.pids, loaded.camids))
    query = encrypt_query(key, gallery, loaded.features[rows])
    save_query(args.out, key, query, image_paths=list(loaded.image_paths)[rows], pids=pids, camids=camids)
    print(f"wrote {args.out} ({query.count} encrypted queries, {query.nbytes / query.count:,.0f} bytes each)")
    return 0


def plain_features(path: Path):
    from ..ciphers.ckks_files import ckks_format
    from ..ciphers.matching import is_encrypted_file
    from ..features import load_features
    from ..stores import is_store, read_store

    if is_store(path):
        return read_store(path)
    if is_encrypted_file(path):
        raise ShuffleBitsError(f"{path} is encrypted: CKKS takes plaintext features (decrypt them first)")
    if (found := ckks_format(path)) is not None:
        raise ShuffleBitsError(f"{path} is a {found} file, not plaintext features")
    return load_features(path)


def refuse_ckks_inputs(args) -> None:
    """Outside CKKS the matcher ranks by itself and nothing is released: the release options, and CKKS files as
    query or key, are one-line errors."""
    from ..ciphers.ckks_files import ckks_format

    given = [flag for flag in RELEASE_OPTIONS if getattr(args, flag[2:].replace("-", "_")) not in (None, False)]
    if given:
        raise ShuffleBitsError(f"{', '.join(given)}: only for a CKKS --gallery (what its key holder releases)")
    for path in (args.query, args.key):
        if path is not None and (found := ckks_format(path)) is not None:
            raise ShuffleBitsError(f"{path} is a {found} file, but --gallery {args.gallery} is not a CKKS gallery")


def release_options(args, metric: str) -> dict:
    """``KeyHolder.release``'s keywords from ``--top-k``, ``--threshold``, ``--reveal-scores``; bad mixes refused."""
    from ..ciphers.ckks import TOP_K

    if args.reveal_scores:
        if args.top_k is not None or args.threshold is not None:
            raise ShuffleBitsError("--reveal-scores releases every score: --top-k and --threshold have nothing to cut")
        return {"reveal_scores": True}
    top_k = TOP_K if args.top_k is None else args.top_k
    if top_k < 1:
        raise ShuffleBitsError(f"--top-k must be at least 1, got {top_k}")
    if args.threshold is not None:
        if not math.isfinite(args.threshold) or abs(args.threshold) > 1:
            raise ShuffleBitsError(f"--threshold is a cosine similarity in [-1, 1], got {args.threshold}")
        if metric != "cosine":
            raise ShuffleBitsError(
                f"--threshold needs a cosine gallery (a {metric} score's scale depends on the query's norm, so one "
                "threshold would not mean one distance): ckks-encrypt --metric cosine"
            )
    return {"top_k": top_k, "threshold": args.threshold}


def _release_document(release, mode: str, options: dict, gallery) -> dict:
    """The JSON the key holder writes: the mode, then ids (gallery rows, best first, -1 below the threshold) or,
    only in the insecure mode, every score."""
    document = {
        "format": RELEASE_FORMAT,
        "version": RELEASE_VERSION,
        "mode": mode,
        "top_k": options.get("top_k"),
        "threshold": options.get("threshold"),
        "metric": gallery.metric,
        "key_fingerprint": gallery.key_fingerprint,
        "gallery_count": gallery.count,
        "queries": len(release.ids),
    }
    if release.scores is None:
        return {**document, "ids": release.ids.tolist()}
    if gallery.metric == "cosine":
        return {**document, "score": "cosine similarity", "scores": release.scores.tolist()}
    meaning = "a (2 q.g - |g|^2) / s^2, s = norm_scale, a = 1 / max(1, |q| / s)"
    return {**document, "score": meaning, "norm_scale": gallery.norm_scale, "scores": release.scores.tolist()}


def ckks_reid(args) -> tuple[dict | None, str]:
    """Rank a query (plaintext or an encrypted query file) against a CKKS gallery: the matcher scores ciphertexts,
    the key holder decrypts, keeps its figures and releases what ``--top-k``/``--threshold``/``--reveal-scores`` allow.

    Returns the figures (None when the files carry no labels and only a release was asked for) and the metric.
    """
    from ..atomic import atomic_write
    from ..ciphers.ckks import KeyHolder, comparable, release_from, score
    from ..ciphers.ckks_files import is_ckks_gallery, is_ckks_query, load_gallery, load_key, load_query
    from ..reid import evaluate_ranking

    if args.key is None:
        raise ShuffleBitsError(f"{args.gallery} is a CKKS gallery: pass the key holder's --key to decrypt the scores")
    if args.out is not None and args.out.suffix != ".json":
        raise ShuffleBitsError(f"--out (the key holder's release) ends in .json, got {args.out.name}")
    gallery, passthrough = load_gallery(args.gallery)  # the matcher: no key
    if args.metric is not None and args.metric != gallery.metric:
        raise ShuffleBitsError(f"{args.gallery} was encrypted for {gallery.metric} ranking, not {args.metric}")
    options = release_options(args, gallery.metric)
    query_path = Path(args.query)
    if is_ckks_gallery(query_path):
        raise ShuffleBitsError(f"{query_path} is a CKKS gallery; encrypt a query with ckks-encrypt-query")
    encrypted_query = is_ckks_query(query_path)
    if encrypted_query:
        query, query_labels = load_query(query_path)
        comparable(gallery, query)
    else:
        loaded = plain_features(query_path)
        query, query_labels = loaded.features, {"pids": loaded.pids, "camids": loaded.camids}
    holder = KeyHolder(load_key(args.key))
    load_gallery(args.gallery, holder.key)  # the key holder checks the files' tags before releasing anything
    if encrypted_query:
        load_query(query_path, holder.key)
    plain = holder.decrypt(score(gallery, query))
    labels = (query_labels.get("pids"), passthrough.get("pids"), query_labels.get("camids"), passthrough.get("camids"))
    labelled = all(values is not None for values in labels)
    if not labelled and args.out is None:
        raise ShuffleBitsError("query and gallery need pids/camids; extract them from Market-style image names")
    mode = "reveal-scores" if args.reveal_scores else "top-k" if args.threshold is None else "threshold"
    if args.out is not None:
        document = _release_document(release_from(plain, **options), mode, options, gallery)
        with atomic_write(args.out, "w") as handle:
            json.dump(document, handle)
        print(f"key holder: released {_released(document)} to {args.out}", file=sys.stderr)
    if not labelled:
        return None, gallery.metric
    order = release_from(plain, top_k=gallery.count).ids  # the key holder's own full ranking: never released
    result = evaluate_ranking(order, *labels, max_rank=args.max_rank)
    result["release"] = {"mode": mode, **options, "out": None if args.out is None else str(args.out)}
    return result, gallery.metric


def _released(document: dict) -> str:
    if document["mode"] == "reveal-scores":
        return f"every score of {document['queries']} queries (INSECURE: --reveal-scores)"
    cut = f" with cosine >= {document['threshold']}" if document["mode"] == "threshold" else ""
    return f"the top {document['top_k']} gallery row ids per query{cut} ({document['queries']} queries)"
