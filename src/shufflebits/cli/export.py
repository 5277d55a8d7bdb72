"""``shufflebits export``: a feature extractor plus its cipher as one ONNX model that outputs ciphertext."""

from __future__ import annotations

import argparse
import sys

from ..errors import ShuffleBitsError
from . import options


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export model + cipher as ONNX that outputs ciphertext (the key is inside the file)",
        description="Write an ONNX model: preprocessed images (n, 3, H, W) in, encrypted float32 features out, "
        "the cipher as ONNX integer/bitwise operators with the key baked in (anyone holding the file holds the "
        "key). chacha20 models take the per-vector nonces (uint8 (n, 16)) as a second input 'nonces'.",
    )
    options.add_model(parser)
    parser.add_argument("--cipher", required=True, help="shufflebits, shufflebits-dim or chacha20 (must match --key)")
    parser.add_argument("--key", required=True, help="key file (shufflebits keygen)")
    parser.add_argument("--out", required=True, help="output .onnx file")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default and minimum: 26, for BitCast)")
    options.add_size(parser, None, "input size (default: the checkpoint's, else 256x128)")
    parser.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from ..ciphers import cipher_for_key, load_key, spec
    from ..ciphers.onnx_ops import MIN_OPSET, check_exportable
    from ..data.sizes import parse_size

    spec(args.cipher)  # an unknown name lists the ciphers
    opset = MIN_OPSET if args.opset is None else args.opset
    check_exportable(args.cipher, opset)
    key = load_key(args.key)
    if key.cipher != args.cipher:
        raise ShuffleBitsError(f"--key {args.key} is a {key.cipher} key, not a {args.cipher} key")
    from ..models.export import export_encrypting_model

    size = parse_size(args.size) if args.size else None
    info = export_encrypting_model(
        args.model, cipher_for_key(key), args.out, weights=args.weights, size=size, opset=opset
    )
    print(
        f"wrote {args.out}: {args.model} + {args.cipher} (key {key.fingerprint}), {info['feature_dim']}-d ciphertext, "
        f"opset {info['opset']}, inputs {', '.join(info['inputs'])}; the file contains the key",
        file=sys.stderr,
    )
    return 0
