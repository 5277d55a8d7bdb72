"""``shufflebits attack``: the leakage matrix (attribute inference, reconstruction, adaptive attacks) for a victim."""

from __future__ import annotations

import sys
from pathlib import Path

from . import options


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "attack",
        help="attack plaintext features and every cipher; write DIR/leakage.json and DIR/leakage.md",
        description=(
            "Prepare the victim (synthetic worlds and a trained victim by default, cached in DIR/cache), then run "
            "attribute inference, image reconstruction and the adaptive attacks on ciphertexts (same-key learning, "
            "permutation invariants, key recovery) against plaintext, ShuffleBits fixed / per-dimension / one-time, "
            "ChaChaPad and AES-GCM. Every figure comes with its chance level and sample count."
        ),
    )
    options.add_profile(parser, "quick", "sizes and budgets of the victim and of the attacks (default: quick)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    options.add_victim(parser)
    options.add_device(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed for worlds, victim and attacks (default: 0)")
    options.add_no_progress(parser)
    parser.set_defaults(func=handler)


def handler(args) -> int:
    from ..attacks.leakage import leakage_markdown, leakage_matrix, write_leakage
    from ..runtime import check_device
    from ..study.pipeline import prepare_victim
    from ..study.profiles import get_profile

    profile = get_profile(args.profile)
    check_device(args.device)  # before DIR is created
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    progress = not args.no_progress
    with prepare_victim(
        profile, out, victim=args.victim, weights=args.weights, device=args.device, seed=args.seed, progress=progress
    ) as victim:
        result = leakage_matrix(
            victim.attacker,
            victim.user_query,
            victim.user_gallery,
            victim.embed,
            profile=profile.attacks,
            seed=args.seed,
            device=args.device,
            progress=progress,
        )
    json_path, md_path = write_leakage(result, out)
    print(f"victim: {victim.victim}; data: {victim.dataset}")
    print(leakage_markdown(result.rows, per_attribute=False))
    print(f"per-attribute rows in {md_path}; all rows in {json_path}", file=sys.stderr)
    return 0
