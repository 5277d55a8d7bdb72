"""``keygen``, ``encrypt``, ``decrypt``, ``inspect`` and ``bench``.

Handlers import the cipher code lazily so ``shufflebits --help`` stays fast: the
choices come from the catalogue, which imports nothing heavy. dtype problems
(TypeError from the ciphers) become one-line errors like any
other user error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..ciphers.catalogue import Param, check_params, cipher_names, format_params, spec
from ..ciphers.cost import GALLERY
from ..errors import ShuffleBitsError
from . import options


def register(subparsers) -> None:
    keygen = subparsers.add_parser("keygen", help="create a key file (0600, never overwritten)")
    keygen.add_argument("--cipher", required=True, choices=cipher_names())
    seeded = ", ".join(cipher_names(seed_keys=True))
    keygen.add_argument("--seed", type=int, help=f"paper-compatible INSECURE key ({seeded} only)")
    for name, (param, ciphers) in scheme_params().items():
        kind = int if param.kind == "count" else float
        keygen.add_argument(f"--{name}", type=kind, help=f"{param.help} ({', '.join(ciphers)} keys only)")
    keygen.add_argument("--out", required=True, type=Path, help="key file to create")
    keygen.set_defaults(func=keygen_command)

    encrypt = subparsers.add_parser(
        "encrypt", help="encrypt a feature file (.npz paper layout or .npy) or a Parquet feature store"
    )
    encrypt.add_argument("--key", required=True, type=Path)
    encrypt.add_argument("input", type=Path, help="features: .npz, .npy, or a .parquet store (file or folder)")
    encrypt.add_argument("output", type=Path, help="encrypted .npz, or .parquet for a store (streamed by row group)")
    add_force(encrypt)
    add_insecure_seed_key(encrypt)
    options.add_engine(encrypt)
    encrypt.set_defaults(func=encrypt_command)

    decrypt = subparsers.add_parser("decrypt", help="decrypt an encrypted feature file")
    decrypt.add_argument("--key", required=True, type=Path)
    decrypt.add_argument("input", type=Path)
    decrypt.add_argument("output", type=Path, help="plaintext .npz (paper layout) or .npy; .parquet for a store")
    add_force(decrypt)
    add_insecure_seed_key(decrypt)
    options.add_engine(decrypt)
    decrypt.set_defaults(func=decrypt_command)

    inspect = subparsers.add_parser("inspect", help="show a key or feature file's metadata (never key material)")
    inspect.add_argument("file", type=Path)
    inspect.set_defaults(func=inspect_command)

    bench = subparsers.add_parser("bench", help="throughput of every cipher and kernel")
    bench.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    bench.add_argument("--size-mib", type=float, default=64.0)
    bench.add_argument(
        "--compiled",
        action="store_true",
        help="also the torch.compile ChaCha20 kernel rows (compiling takes minutes the first time)",
    )
    bench.add_argument(
        "--cost",
        action="store_true",
        help="instead: per cipher, µs per encryption, µs per 1:1 comparison, ms per 1:N search over --templates "
        "templates and bytes per protected vector",
    )
    bench.add_argument(
        "--templates",
        type=int,
        default=GALLERY,
        help=f"with --cost: the gallery of the 1:N search (default {GALLERY:,})",
    )
    bench.set_defaults(func=bench_command)


def scheme_params() -> dict[str, tuple[Param, list[str]]]:
    """Each scheme parameter (the catalogue's ``params``) by name: its declaration and the ciphers that take it."""
    found: dict[str, tuple[Param, list[str]]] = {}
    for name in cipher_names():
        for param in spec(name).params:
            found.setdefault(param.name, (param, []))[1].append(name)
    return found


def add_force(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="replace OUTPUT if it exists (default: refuse)")


def add_insecure_seed_key(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--insecure-seed-key",
        action="store_true",
        help="accept a keygen --seed key (the paper's: brute-forcing the seed recovers it; refused by default)",
    )


def load_cipher(path: Path, insecure_seed_key: bool):
    """The cipher of key file ``path``; a seed key only with ``--insecure-seed-key`` (and a warning)."""
    from ..ciphers import cipher_for_key, load_key

    key = load_key(path)
    if key.insecure:
        if not insecure_seed_key:
            raise ShuffleBitsError(
                f"{path} is a seed key (keygen --seed): its seed can be brute-forced from any fingerprint or file, "
                "which reveals the key and lets files be forged; pass --insecure-seed-key to use it anyway"
            )
        print(f"warning: {path} is an INSECURE seed key (paper compatibility only)", file=sys.stderr)
    return cipher_for_key(key)


def refuse_overwrite(out: Path, force: bool, *inputs: Path) -> None:
    """An existing output is kept unless ``--force`` (a typo must not replace a feature file); ``inputs`` are
    never the output, even with it."""
    if any(out.resolve() == path.resolve() for path in inputs):
        raise ShuffleBitsError(f"--out {out} is one of the inputs; write the ciphertexts to another file")
    if out.is_file() and not force:
        raise ShuffleBitsError(f"{out} exists; pass --force to replace it")


def keygen_command(args: argparse.Namespace) -> int:
    from ..ciphers.keys import generate_key, save_key

    offered = scheme_params()
    given = {name: getattr(args, name) for name in offered if getattr(args, name) is not None}
    declared = [param.name for param in spec(args.cipher).params]
    stray = [name for name in given if name not in declared]
    if stray:
        takers = ", ".join(offered[stray[0]][1])
        raise ShuffleBitsError(f"--{stray[0]} is a parameter of {takers} keys, not of {args.cipher}")
    if args.seed is not None:
        if not spec(args.cipher).seed_keys:
            seeded = ", ".join(map(repr, cipher_names(seed_keys=True)))
            raise ShuffleBitsError(f"--seed is only for the paper-compatible {seeded} cipher")
        from ..ciphers.decrepit import seed_key

        key = seed_key(args.seed)
        print(
            "warning: a --seed key is the paper's INSECURE key (only the seed's entropy, one permutation); "
            "use it for compatibility, not protection",
            file=sys.stderr,
        )
    else:
        key = generate_key(args.cipher, **given)
    save_key(args.out, key)
    params = f"{format_params(key.params)}, " if key.params else ""
    print(f"wrote {args.out} ({key.cipher}, mode {key.mode}, {params}fingerprint {key.fingerprint})")
    return 0


def encrypt_command(args: argparse.Namespace) -> int:
    from ..ciphers.files import save_encrypted
    from ..features import load_features

    refuse_overwrite(args.output, args.force)
    engine = options.engine_options(args)
    cipher = load_cipher(args.key, args.insecure_seed_key)
    if _store_command(args, cipher, "encrypt", engine):
        return 0
    if args.output.suffix != ".npz":
        raise ShuffleBitsError(f"encrypted output must end in .npz, got {args.output.name}")
    plain = load_features(args.input)
    if plain.features.ndim != 2:  # `decrypt` could not write anything else back
        raise ShuffleBitsError(f"{args.input}: features must be 2-D (n, d), got shape {plain.features.shape}")
    try:
        sealed = cipher.encrypt(plain.features, authenticate=True)
    except TypeError as error:
        raise ShuffleBitsError(f"{args.input}: {error}") from error
    save_encrypted(args.output, cipher, sealed, plain.image_paths, pids=plain.pids, camids=plain.camids)
    print(f"encrypted {sealed.shape[0]}x{sealed.shape[1]} {sealed.dtype} with {cipher.name} -> {args.output}")
    return 0


def decrypt_command(args: argparse.Namespace) -> int:
    from ..ciphers.files import load_encrypted
    from ..features import save_features

    refuse_overwrite(args.output, args.force)
    engine = options.engine_options(args)
    cipher = load_cipher(args.key, args.insecure_seed_key)
    if _store_command(args, cipher, "decrypt", engine):
        return 0
    sealed, passthrough = load_encrypted(args.input, cipher)
    if sealed.dtype == "bfloat16":
        raise ShuffleBitsError("bfloat16 features cannot be stored in .npz/.npy; decrypt them in Python")
    features = cipher.decrypt(sealed)
    if not sealed.authenticated:
        print(f"note: {args.input} holds {_authentication(sealed.cipher, 0)}", file=sys.stderr)
    save_features(
        args.output,
        features,
        [str(p) for p in passthrough.get("image_paths", [])] or None,
        pids=passthrough.get("pids"),
        camids=passthrough.get("camids"),
    )
    print(f"decrypted {sealed.shape[0]}x{sealed.shape[1]} {sealed.dtype} -> {args.output}")
    return 0


def _store_command(args: argparse.Namespace, cipher, action: str, engine: dict | None) -> bool:
    """Encrypt or decrypt a Parquet store (either side ``.parquet``, or a folder); False for the ``.npz`` path.

    ``engine`` (``--engine ray``'s address and workers) runs the same steps on Ray actors.
    """
    from .. import stores

    if not (stores.is_store(args.input) or args.output.suffix == ".parquet"):
        if engine is not None:
            raise ShuffleBitsError("--engine ray runs on Parquet feature stores (.parquet in and out)")
        return False
    if not (stores.is_store(args.input) and args.output.suffix == ".parquet"):
        raise ShuffleBitsError(
            f"a feature store {action}s into a store: {args.input} -> {args.output} needs both .parquet"
        )
    if engine is None:
        run = stores.encrypt_store if action == "encrypt" else stores.decrypt_store
        summary = run(args.input, args.output, cipher)
    else:
        from ..engine import on_ray

        run = on_ray.encrypt_store_on_ray if action == "encrypt" else on_ray.decrypt_store_on_ray
        summary = run(args.input, args.output, cipher, **engine)
    shape = f"{summary.rows}x{summary.dim} in {summary.row_groups} row groups"
    print(f"{action}ed {shape} with {cipher.name} -> {args.output}")
    return True


def inspect_command(args: argparse.Namespace) -> int:
    path: Path = args.file
    if path.suffix == ".parquet" or path.is_dir():
        from ..stores import describe_store

        print("\n".join(describe_store(path)))
        return 0
    if not path.is_file():
        raise ShuffleBitsError(f"{path} does not exist")
    if path.suffix in (".npz", ".npy"):
        for line in _describe_features(path):
            print(line)
        return 0
    from ..ciphers.keys import read_key_record

    record = read_key_record(path)
    print(f"key file {path}")
    for name in ("version", "cipher", "mode", "fingerprint"):
        print(f"  {name}: {record.get(name)}")
    params = check_params(str(record.get("cipher")), record.get("params", {}))
    if params:
        print(f"  params: {format_params(params)}")
    if record.get("seed") is not None:
        print("  seed key: yes (paper-compatible, INSECURE)")
    return 0


def _describe_features(path: Path) -> list[str]:
    import zipfile

    from ..ciphers.files import read_header, recorded_params

    encrypted = False
    if path.suffix == ".npz":
        try:
            with zipfile.ZipFile(path) as archive:
                encrypted = "header.npy" in archive.namelist()  # how np.savez stores the array "header"
        except zipfile.BadZipFile:
            pass  # load_features below says what is wrong with it
    if encrypted:
        header, arrays = read_header(path)
        lines = [f"encrypted feature file {path}"]
        fields = ("version", "cipher", "mode", "key_fingerprint", "dtype", "shape")
        lines += [f"  {name}: {header.get(name)}" for name in fields]
        params = recorded_params(path, header)
        if params:
            older = "" if "params" in header else " (not recorded: an older file, read with the defaults)"
            lines.append(f"  params: {format_params(params)}{older}")
        nonces = arrays.get("nonces")
        if nonces is not None and nonces.ndim != 2:
            raise ShuffleBitsError(f"{path}: nonces must be (n, bytes), got shape {list(nonces.shape)}")
        lines.append(f"  nonces: {'none' if nonces is None else f'{nonces.shape[1]} bytes per vector'}")
        lines.append(f"  file MAC: HMAC-SHA256 tag present ({arrays['tag'].size} bytes)")
        seals = header.get("seals") or []
        lines.append(f"  ciphertext: {_authentication(str(header.get('cipher')), len(seals))}")
        return lines
    from ..features import load_features

    plain = load_features(path)
    return [
        f"plaintext feature file {path}",
        f"  shape: {list(plain.features.shape)}",
        f"  dtype: {plain.features.dtype}",
        f"  image paths: {sum(1 for p in plain.image_paths if p)}",
    ]


def _authentication(cipher: str, seals: int) -> str:
    """One phrase: whether the ciphertext itself is authenticated (beyond the file MAC)."""
    if seals:
        return f"authenticated=True ({seals} sealed batch{'es' if seals > 1 else ''})"
    if spec(cipher).authenticated:
        return "authenticated=True (AEAD)"
    return "authenticated=False (raw, untagged ciphertext: only the file MAC protects it)"


def bench_command(args: argparse.Namespace) -> int:
    import os

    from ..ciphers.bench import run_benchmark
    from ..study.report.terminal import throughput_lines

    if args.cost:
        from ..ciphers.cost import cost_lines, cost_rows

        if args.templates < 1:
            raise ShuffleBitsError("--templates must be at least 1")
        rows = cost_rows(gallery=args.templates)
        print(json.dumps(rows, indent=2) if args.json else "\n".join(cost_lines(rows)))
        return 0
    if args.size_mib <= 0:
        raise ShuffleBitsError("--size-mib must be positive")
    if not args.json:
        print(f"measuring every cipher and kernel on {args.size_mib:g} MiB of float32 ...", file=sys.stderr)
    rows = run_benchmark(size_mib=args.size_mib, progress=False, compiled=args.compiled)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print("\n".join(throughput_lines(rows, os.cpu_count())))
    return 0
