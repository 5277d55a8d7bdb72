"""``shufflebits`` command line: one sub-command module per architectural area.

Each module in ``COMMAND_MODULES`` exposes ``register(subparsers)``, which adds
its sub-commands and sets ``func`` (a callable taking the parsed args and
returning an exit code). Modules keep heavy imports (torch...) inside their
handlers so ``shufflebits --help`` stays fast. Arguments that several commands
share (--model, --size, --device, progress flags...) are declared once in ``options``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__
from ..atomic import remove_temporaries_on_signals
from ..errors import ShuffleBitsError

COMMAND_MODULES = (
    "shufflebits.cli.crypto",  # keygen, encrypt, decrypt, inspect, bench
    "shufflebits.cli.data",  # synth
    "shufflebits.cli.models",  # extract, reid
    "shufflebits.cli.train",  # train
    "shufflebits.cli.service",  # serve
    "shufflebits.cli.export",  # export
    "shufflebits.cli.attack",  # attack
    "shufflebits.cli.study",  # study
    "shufflebits.cli.zoo",  # zoo list, zoo show, zoo train
    "shufflebits.cli.realism",  # realism
    "shufflebits.cli.he",  # ckks-keygen, ckks-encrypt
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shufflebits",
        description="Measure what deep feature vectors leak, and encrypt them.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    remove_temporaries_on_signals()  # SIGTERM unwinds like Ctrl+C: no hidden temporary file stays behind
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ShuffleBitsError as error:
        print(f"shufflebits: error: {error}", file=sys.stderr)
        return 2
    except (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError) as error:
        # An atomic write's os.replace(temporary, output) names the user's output second.
        print(f"shufflebits: error: {error.strerror}: {error.filename2 or error.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("shufflebits: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
