"""``shufflebits zoo``: the victim zoo's entries, their model cards, and retraining one from scratch."""

from __future__ import annotations

import argparse
import json

from . import options


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "zoo",
        help="the victim zoo: pretrained re-ID victims shipped with shufflebits",
        description="List the victim zoo, show a model card, or retrain an entry from scratch (resumable).",
    )
    actions = parser.add_subparsers(dest="zoo_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every zoo entry, whether it is trained, and its re-ID figures")
    listing.set_defaults(func=run_list)
    show = actions.add_parser("show", help="an entry's model card as JSON")
    show.add_argument("name", metavar="NAME")
    show.set_defaults(func=run_show)
    train = actions.add_parser(
        "train",
        help="retrain an entry from scratch: world, training (resumable), evaluation, weights and card",
        description="Generates the entry's victim world, trains with its recipe (checkpoint every epoch: run the "
        "same command again to resume), evaluates and writes NAME.safetensors and NAME.json.",
    )
    train.add_argument("name", metavar="NAME")
    train.add_argument("--work", required=True, metavar="DIR", help="worlds and the resumable checkpoint go here")
    train.add_argument(
        "--out", metavar="DIR", help="where the weights and card go (default: the installed package's zoo folder)"
    )
    train.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    options.add_no_progress(train)
    train.set_defaults(func=run_train)


def run_list(args: argparse.Namespace) -> int:
    from ..errors import ShuffleBitsError
    from ..models.zoo import ZOO, read_card

    for name, entry in ZOO.items():
        try:
            card = read_card(name)
        except ShuffleBitsError:
            print(f"{name}: {entry.model} at {entry.input_size[0]}x{entry.input_size[1]}, not trained yet")
            continue
        own, users = card["own_world"], card["user_world"]
        size = f"{entry.input_size[0]}x{entry.input_size[1]}"
        training = card["training"]
        print(
            f"{name}: {entry.model} at {size}, {training['epochs']} epochs "
            f"({training['wall_seconds'] / 3600:.1f} h on {training['hardware']}); "
            f"own world rank-1 {own['rank1']:.3f} mAP {own['mAP']:.3f}; "
            f"user world rank-1 {users['rank1']:.3f} mAP {users['mAP']:.3f}"
        )
    return 0


def run_show(args: argparse.Namespace) -> int:
    from ..models.zoo import read_card

    print(json.dumps(read_card(args.name), indent=2))
    return 0


def run_train(args: argparse.Namespace) -> int:
    from ..engine.zoo import retrain
    from ..errors import ShuffleBitsError
    from ..runtime import torch_threads

    if args.threads is not None and args.threads < 1:
        raise ShuffleBitsError(f"--threads must be at least 1, got {args.threads}")
    with torch_threads(args.threads):
        card = retrain(args.name, args.work, out_dir=args.out, progress=not args.no_progress)
    own = card["own_world"]
    print(f"{args.name}: own world rank-1 {own['rank1']:.3f}, mAP {own['mAP']:.3f}, mINP {own['mINP']:.3f}")
    return 0
