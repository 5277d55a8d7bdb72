"""``shufflebits serve``: a model behind the HTTP black-box API, optionally encrypting."""

from __future__ import annotations

import argparse
import math
import os
import sys

from ..errors import ShuffleBitsError
from . import crypto, options

TOKEN_VARIABLE = "SHUFFLEBITS_TOKEN"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a re-ID model as an HTTP black box (POST /v1/features)",
        description=(
            "Answer POST /v1/features (multipart field 'images', header 'Authorization: Bearer TOKEN') "
            "with base64 little-endian feature bytes, encrypted with a server-held key when --encrypt-with is given "
            "and sealed to the request. GET /v1/health needs no token (the key fingerprint only with it)."
        ),
    )
    options.add_model(parser)
    parser.add_argument(
        "--token",
        help=f"bearer token clients must send (prefer the {TOKEN_VARIABLE} environment variable: "
        "command lines are visible to other users)",
    )
    parser.add_argument(
        "--encrypt-with", metavar="KEY", help="key file (shufflebits keygen); features leave the server encrypted"
    )
    crypto.add_insecure_seed_key(parser)
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, loopback only)")
    options.add_size(parser, None, "input size (default: the checkpoint's, 256x128 for torchreid weights)")
    options.add_device(parser)
    parser.add_argument("--max-images", type=int, default=256, help="most images per request (default 256)")
    parser.add_argument("--max-request-mb", type=float, default=32.0, help="largest request body in MiB (default 32)")
    parser.add_argument(
        "--max-request-pixels",
        type=int,
        default=None,
        help="most decoded pixels per request, summed over its images (default: two 4096x4096 images)",
    )
    parser.add_argument(
        "--max-queue", type=int, default=8, help="requests admitted at once; more get 503 + Retry-After (default 8)"
    )
    parser.add_argument(
        "--memory-budget-mib",
        type=float,
        default=None,
        help="memory shared by all admitted requests (bodies, decodes, images); a request that does not fit gets "
        "503 + Retry-After (default 384, or the least one largest request needs)",
    )
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads for the model (default: every core but one, at least 1)"
    )
    parser.add_argument(
        "--layout",
        choices=("nhwc", "nchw"),
        default="nhwc",
        help="convolution memory layout of registry models: nhwc (channels-last, faster at small batches; "
        "default) or nchw (bit-identical to `shufflebits extract`)",
    )
    parser.add_argument(
        "--max-batch", type=int, default=32, help="most images per model call across requests; 1: unbatched (32)"
    )
    parser.add_argument(
        "--max-wait-ms", type=float, default=10.0, help="how long a model call waits for more requests (default 10)"
    )
    parser.add_argument(
        "--request-timeout", type=float, default=30.0, help="seconds a request body may take to arrive (default 30)"
    )
    parser.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get(TOKEN_VARIABLE)
    if not token:
        raise ShuffleBitsError(f"refusing to serve without a token: pass --token or set {TOKEN_VARIABLE}")
    if not 1 <= args.port <= 65535:
        raise ShuffleBitsError(f"--port must be in 1..65535, got {args.port}")
    if args.max_request_mb <= 0 or args.max_images < 1 or args.max_queue < 1 or not args.request_timeout > 0:
        raise ShuffleBitsError("--max-request-mb, --max-images, --max-queue and --request-timeout must be positive")
    if args.max_batch < 1 or not args.max_wait_ms >= 0:
        raise ShuffleBitsError("--max-batch must be positive and --max-wait-ms non-negative")
    if args.threads is not None and args.threads < 1:
        raise ShuffleBitsError(f"--threads must be at least 1, got {args.threads}")
    if args.max_request_pixels is not None and args.max_request_pixels < 1:
        raise ShuffleBitsError("--max-request-pixels must be positive")
    if args.memory_budget_mib is not None and not 0 < args.memory_budget_mib < math.inf:
        raise ShuffleBitsError(f"--memory-budget-mib must be a positive number, got {args.memory_budget_mib}")
    from ..data.sizes import parse_size
    from ..models import build_extractor
    from ..service.app import create_app
    from ..service.server import serve

    cipher = None
    if args.encrypt_with:
        cipher = crypto.load_cipher(args.encrypt_with, args.insecure_seed_key)
    size = parse_size(args.size) if args.size else None
    extractor = build_extractor(
        args.model,
        weights=args.weights,
        pretrained=args.pretrained,
        device=args.device,
        size=size,
        channels_last=args.layout == "nhwc",
    )
    limits = {"max_request_pixels": args.max_request_pixels} if args.max_request_pixels is not None else {}
    if args.memory_budget_mib is not None:
        limits["memory_budget_bytes"] = int(args.memory_budget_mib * 2**20)
    app = create_app(
        extractor,
        token,
        cipher,
        max_request_bytes=int(args.max_request_mb * 1024 * 1024),
        max_images=args.max_images,
        max_queue=args.max_queue,
        request_timeout=args.request_timeout,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        **limits,
    )
    from ..runtime import serving_threads, torch_threads

    threads = args.threads or serving_threads()
    height, width = extractor.input_size
    encryption = (
        f"encrypting with {cipher.name} key {cipher.key.fingerprint}" if cipher is not None else "plaintext features"
    )
    print(
        f"shufflebits: serving {extractor.name} ({extractor.feature_dim}-d, input {height}x{width}, {encryption}) "
        f"on {threads} torch thread(s) at http://{args.host}:{args.port}/v1/features",
        file=sys.stderr,
    )
    with torch_threads(threads):
        serve(app, host=args.host, port=args.port)
    return 0
