"""``shufflebits study``: the whole study in one command, ending in an HTML report."""

from __future__ import annotations

from . import options


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "study",
        help="run the whole study (victim, attacks, ciphers, re-ID, throughput) and write an HTML report",
        description=(
            "Generate the worlds, train or load the victim, extract features through the black box, "
            "attack plaintext and every cipher, check re-ID after decryption, benchmark the ciphers and "
            "write DIR/index.html and DIR/results.json. Stages are cached in DIR/cache: a re-run resumes."
        ),
    )
    options.add_profile(
        parser, "default", "sizes and budgets: quick (~3 min), default (~15 min), paper (hours) (default: default)"
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    options.add_victim(parser)
    parser.add_argument("--dataset", choices=("market1501", "dukemtmc"), help="real attacker/user dataset instead of the synthetic world")
    parser.add_argument("--root", metavar="PATH", help="dataset folder")
    parser.add_argument(
        "--attributes", metavar="PATH", help="attribute .mat file (default: market/duke_attribute.mat inside or beside --root)"
    )
    parser.add_argument("--via-http", action="store_true", help="query the victim through the real HTTP service on loopback")
    options.add_device(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed for worlds, training and attacks (default: 0)")
    parser.set_defaults(func=handler)


def _command_line(args) -> list[str]:
    """The command as the user could retype it (recorded in the report)."""
    words = ["shufflebits", "study", "--profile", args.profile, "--out", args.out]
    for option in ("victim", "weights", "dataset", "root", "attributes", "device", "seed"):
        value = getattr(args, option)
        if value is not None:
            words += [f"--{option}", str(value)]
    return words + (["--via-http"] if args.via_http else [])


def handler(args) -> int:
    from ..study.report import summary_table
    from ..study.run import run_study

    result = run_study(
        args.profile,
        args.out,
        victim=args.victim,
        weights=args.weights,
        device=args.device,
        dataset=args.dataset,
        root=args.root,
        via_http=args.via_http,
        seed=args.seed,
        attributes=args.attributes,
        argv=_command_line(args),
    )
    print(summary_table(result.results))
    print(f"report: {result.index_html.resolve()}")
    return 1 if result.failures else 0
