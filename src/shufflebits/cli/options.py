"""Arguments several sub-commands share, declared once so their spelling and help agree.

Only declarations live here: values are checked where they are used
(``shufflebits.data.sizes.parse_size``, ``shufflebits.runtime.check_device``,
``StudyConfig.validate``), so the Python API and the command line refuse the
same input for the same reason; only the wording differs, as the library names
parameters (``root=``) where the command line names flags (``--root``).
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
from collections.abc import Iterator

from ..errors import ShuffleBitsError


def add_model(parser: argparse.ArgumentParser) -> None:
    """``--model`` and ``--weights`` of a command that runs one feature extractor."""
    parser.add_argument("--model", required=True, help="registry name (osnet_x0_25, resnet50_bot, ...) or onnx:PATH")
    parser.add_argument(
        "--weights",
        help="torchreid state dict, FastReID checkpoint or shufflebits checkpoint (default: random weights)",
    )
    add_pretrained(parser)


def add_pretrained(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pretrained",
        metavar="ZOO_NAME",
        help="a victim-zoo model shipped with shufflebits, e.g. osnet_x0_25-synth-128x64 (`shufflebits zoo list`)",
    )


def add_victim(parser: argparse.ArgumentParser) -> None:
    """``--victim`` and ``--weights`` of the commands that prepare a victim (attack, study)."""
    parser.add_argument("--victim", metavar="NAME", help="victim model name (e.g. osnet_x0_25) or onnx:PATH")
    parser.add_argument(
        "--weights", metavar="PATH", help="victim weights (torchreid, FastReID or shufflebits checkpoint)"
    )
    add_pretrained(parser)
    parser.add_argument(
        "--train-victim",
        action="store_true",
        help="train the victim on the synthetic victim world in this run instead of using the profile's zoo victim",
    )


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


def add_engine(parser: argparse.ArgumentParser) -> None:
    """``--engine``, ``--ray-address`` and ``--workers`` of the store pipelines (``shufflebits.engine.on_ray``)."""
    parser.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="run here (default) or on Ray actors (.parquet only)",
    )
    parser.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help="an existing Ray cluster (ray://head:10001, head:6379 or auto); default: a local Ray for this run",
    )
    parser.add_argument("--workers", type=int, help="Ray actors, one CPU (or GPU) each (default: 2)")


def engine_options(args: argparse.Namespace) -> dict | None:
    """``{address, workers}`` for ``--engine ray``, None for the local engine; Ray flags without it are refused."""
    if args.engine == "local":
        for flag, value in (("--ray-address", args.ray_address), ("--workers", args.workers)):
            if value is not None:
                raise ShuffleBitsError(f"{flag} needs --engine ray")
        return None
    workers = 2 if args.workers is None else args.workers
    if workers < 1:
        raise ShuffleBitsError(f"--workers must be positive, got {workers}")
    return {"address": args.ray_address, "workers": workers}


def add_no_progress(parser: argparse.ArgumentParser, flag: str = "--no-progress") -> None:
    """A flag that hides progress bars; every command reads it as ``args.no_progress``.

    ``flag`` keeps each command's historical spelling (``--quiet`` for extract and train).
    """
    parser.add_argument(flag, dest="no_progress", action="store_true", help="no progress bars on stderr")


def add_data(parser: argparse.ArgumentParser) -> None:
    """``--dataset``, ``--root`` and ``--attributes``: a real attacker/user dataset instead of the synthetic world."""
    from ..study.config import DATASETS

    parser.add_argument("--dataset", choices=DATASETS, help="real attacker/user dataset instead of the synthetic world")
    parser.add_argument("--root", metavar="PATH", help="dataset folder")
    parser.add_argument(
        "--attributes",
        metavar="PATH",
        help="attribute .mat file (default: market/duke_attribute.mat inside or beside --root)",
    )


def add_study(parser: argparse.ArgumentParser) -> None:
    """Everything a ``StudyConfig`` is built from, after ``--profile`` (``study`` and ``attack`` share it)."""
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="output folder (created if missing); stages cached in DIR/cache"
    )
    add_victim(parser)
    add_data(parser)
    parser.add_argument(
        "--via-http", action="store_true", help="query the victim through the real HTTP service on loopback"
    )
    add_device(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed for worlds, training and attacks (default: 0)")
    add_no_progress(parser)


# How the study's parameters are spelled on the command line (``ConfigError.worded``).
STUDY_FLAGS = {
    "profile": "--profile",
    "victim": "--victim",
    "weights": "--weights",
    "pretrained": "--pretrained",
    "train_victim": "--train-victim",
    "dataset": "--dataset",
    "root": "--root",
    "attributes": "--attributes",
    "device": "--device",
    "via_http": "--via-http",
    "seed": "--seed",
}


def study_config(args: argparse.Namespace):
    """The one ``StudyConfig`` of a ``study`` or ``attack`` command (validated by the run that takes it)."""
    from ..study.config import StudyConfig

    return StudyConfig.from_profile(
        args.profile,
        victim=args.victim,
        weights=args.weights,
        pretrained=args.pretrained,
        train_victim=args.train_victim,
        dataset=args.dataset,
        root=args.root,
        attributes=args.attributes,
        device=args.device,
        via_http=args.via_http,
        seed=args.seed,
        progress=not args.no_progress,
    )


@contextlib.contextmanager
def flag_wording() -> Iterator[None]:
    """A refused study input, re-raised naming flags (``--root``) where the library names parameters (``root=``)."""
    from ..study.config import ConfigError

    try:
        yield
    except ConfigError as error:
        raise ShuffleBitsError(error.worded(STUDY_FLAGS)) from None


def command_line(command: str, out: str, config) -> str:
    """A command that rebuilds ``config`` exactly (recorded in the report); it reads the config, not argv."""
    words = ["shufflebits", command, "--profile", config.profile.name, "--out", out, "--victim", config.victim.model]
    values = {
        "--weights": config.victim.weights,
        "--dataset": config.data.dataset,
        "--root": config.data.root,
        "--attributes": config.data.attributes,
        "--device": config.device,
        "--seed": config.seed,
    }
    words += [word for flag, value in values.items() if value is not None for word in (flag, str(value))]
    words += ["--via-http"] * config.via_http + ["--no-progress"] * (not config.progress)
    return shlex.join(words)
