"""Arguments several sub-commands share, declared once so their spelling and help agree.

Only declarations live here: values are checked where they are used
(``shufflebits.data.sizes.parse_size``, ``shufflebits.runtime.check_device``),
so the Python API and the command line refuse the same input with the same message.
"""

from __future__ import annotations

import argparse


def add_model(parser: argparse.ArgumentParser) -> None:
    """``--model`` and ``--weights`` of a command that runs one feature extractor."""
    parser.add_argument("--model", required=True, help="registry name (osnet_x0_25, resnet50_bot, ...) or onnx:PATH")
    parser.add_argument(
        "--weights", help="torchreid state dict, FastReID checkpoint or shufflebits checkpoint (default: random weights)"
    )


def add_victim(parser: argparse.ArgumentParser) -> None:
    """``--victim`` and ``--weights`` of the commands that prepare a victim (attack, study)."""
    parser.add_argument("--victim", metavar="NAME", help="victim model name (e.g. osnet_x0_25) or onnx:PATH")
    parser.add_argument("--weights", metavar="PATH", help="victim weights (torchreid, FastReID or shufflebits checkpoint)")


def add_profile(parser: argparse.ArgumentParser, default: str, help: str) -> None:
    """``--profile``; the tests' tiny "smoke" profile is accepted but left out of the help."""
    from ..study.profiles import PROFILES, PUBLIC_PROFILES

    parser.add_argument(
        "--profile", choices=list(PROFILES), metavar="{" + ",".join(PUBLIC_PROFILES) + "}", default=default, help=help
    )


def add_size(parser: argparse.ArgumentParser, default: str | None, help: str) -> None:
    """``--size HxW``, parsed by ``shufflebits.data.sizes.parse_size``."""
    parser.add_argument("--size", default=default, metavar="HxW", help=help)


def add_device(parser: argparse.ArgumentParser) -> None:
    """``--device``, checked by ``shufflebits.runtime.check_device``."""
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")


def add_no_progress(parser: argparse.ArgumentParser, flag: str = "--no-progress") -> None:
    """A flag that hides progress bars; every command reads it as ``args.no_progress``.

    ``flag`` keeps each command's historical spelling (``--quiet`` for extract and train).
    """
    parser.add_argument(flag, dest="no_progress", action="store_true", help="no progress bars on stderr")
