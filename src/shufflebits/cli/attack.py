"""``shufflebits attack``: the study up to the leakage matrix (attribute inference, reconstruction, key recovery)."""

from __future__ import annotations

import sys
from pathlib import Path

from . import options


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "attack",
        help="attack plaintext features and every cipher; write DIR/leakage.json and DIR/leakage.md",
        description=(
            "Prepare the victim (synthetic worlds and a trained victim by default), then run attribute inference, "
            "image reconstruction and the adaptive attacks on ciphertexts (same-key learning, permutation "
            "invariants, key recovery) against plaintext and every cipher. The same stages and cache (DIR/cache) "
            "as `shufflebits study`, stopped after the leakage matrix. Every figure comes with its chance level "
            "and sample count."
        ),
    )
    options.add_profile(parser, "quick", "sizes and budgets of the victim and of the attacks (default: quick)")
    options.add_study(parser)
    parser.set_defaults(func=handler)


def handler(args) -> int:
    from ..attacks.leakage_files import leakage_markdown
    from ..study.run import run_attack

    config = options.study_config(args)
    with options.flag_wording():
        victim, result = run_attack(config, args.out)
    out = Path(args.out)
    print(f"victim: {victim.victim}; data: {victim.dataset}")
    print(leakage_markdown(result.rows, per_attribute=False))
    print(f"per-attribute rows in {out / 'leakage.md'}; all rows in {out / 'leakage.json'}", file=sys.stderr)
    return 0
