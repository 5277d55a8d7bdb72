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
        parser,
        "default",
        "sizes and budgets: quick (a smoke test), default, paper (hours); README: How long things take "
        "(default: default)",
    )
    options.add_study(parser)
    parser.set_defaults(func=handler)


def handler(args) -> int:
    from ..study.report import summary_table
    from ..study.run import run_study

    config = options.study_config(args)
    with options.flag_wording():
        result = run_study(config, args.out, command=options.command_line("study", args.out, config))
    print(summary_table(result.results))
    print(f"report: {result.index_html.resolve()}")
    return 1 if result.failures else 0
