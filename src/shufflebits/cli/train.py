"""``shufflebits train``: train a re-ID victim (BoT recipe) on a dataset folder."""

from __future__ import annotations

import argparse

from . import options

DATASETS = ("market1501", "dukemtmc", "msmt17")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a re-ID model (ID + triplet loss, P x K batches) and write a checkpoint",
        description="Train from scratch on the training split; a checkpoint is written after every epoch.",
    )
    parser.add_argument("--data", required=True, help="dataset folder (e.g. from `shufflebits synth`)")
    parser.add_argument("--model", required=True, help="registry model name, e.g. osnet_x0_25")
    parser.add_argument("--out", required=True, help="checkpoint file to write (.pt)")
    parser.add_argument("--dataset", choices=DATASETS, default="market1501", help="folder layout (default market1501)")
    parser.add_argument("--epochs", type=int, default=12, help="training epochs (default 12)")
    parser.add_argument("--batch-size", type=int, default=64, help="P x K images per batch (default 64)")
    parser.add_argument("--num-instances", type=int, default=4, help="K: images per identity in a batch (default 4)")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak Adam learning rate (default 3e-3)")
    options.add_size(parser, "128x64", "input size (default 128x64)")
    options.add_device(parser)
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--max-minutes", type=float, help="stop before an epoch that would overrun this budget")
    parser.add_argument("--resume", action="store_true", help="continue from --out if it exists")
    options.add_no_progress(parser, "--quiet")
    parser.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from ..data.sizes import parse_size
    from ..engine.train import train

    result = train(
        args.data,
        args.model,
        args.out,
        epochs=args.epochs,
        batch_size=args.batch_size,
        num_instances=args.num_instances,
        lr=args.lr,
        size=parse_size(args.size),
        device=args.device,
        seed=args.seed,
        resume=args.resume,
        progress=not args.no_progress,
        max_minutes=args.max_minutes,
        dataset=args.dataset,
    )
    last = result.history[-1]
    print(
        f"trained to epoch {last['epoch']}/{args.epochs} in {result.seconds:.1f} s: "
        f"loss {last['loss']:.3f}, train accuracy {last['accuracy']:.3f}; checkpoint {result.checkpoint}"
    )
    return 0
