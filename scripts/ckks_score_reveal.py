"""Template recovery from revealed CKKS scores, as a curve over the number of enrolled attacker templates.

Synthetic re-ID-like 512-d features (identity centres in a 64-d subspace, per-image
noise, unit norm; no ReLU, whose shared mean alone would pass the threshold): the
attacker's own 600, the users' 50 queries and 150 gallery templates. ``cosine``:
recovered vs true query from revealed scores; ``topk_cosine``: from the top-k ids the key holder releases by default;
``chance``: the attacker's prior mean alone; ``success``: recoveries the users'
system accepts at FMR 1e-3.

    python scripts/ckks_score_reveal.py [--top-k 5] [--seed 0]
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from shufflebits.attacks.scorereveal import score_reveal_curve
from shufflebits.study.numbers import figure

DIM, SUBSPACE = 512, 64


def world(ids: int, per: int, seed: int, basis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((ids, SUBSPACE)) @ basis / 8
    x = np.repeat(centres, per, axis=0) + 0.5 * rng.standard_normal((ids * per, DIM))
    return x / np.linalg.norm(x, axis=1, keepdims=True), np.repeat(np.arange(ids), per)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    basis = np.random.default_rng(args.seed).standard_normal((SUBSPACE, DIM))
    attacker, _ = world(300, 2, args.seed + 1, basis)
    users, pids = world(50, 4, args.seed + 2, basis)
    victim, gallery = users[::4], np.delete(users, np.s_[::4], axis=0)
    g_pids = np.delete(pids, np.s_[::4])
    impostor = (victim @ gallery.T)[np.arange(50)[:, None] != g_pids[None, :]]
    threshold = float(np.quantile(impostor, 1 - 1e-3))
    rows = score_reveal_curve(attacker, victim, gallery, top_k=args.top_k, threshold=threshold, seed=args.seed)
    print(f"{'n':>5} {'cosine':>8} {'success':>8} {'top-k cosine':>13} {'top-k success':>14} {'chance':>8}")
    for row in rows:
        cells = (row["cosine"], row["success"], row["topk_cosine"], row["topk_success"], row["chance"])
        widths = (8, 8, 13, 14, 8)
        print(f"{row['n']:>5} " + " ".join(f"{figure(v):>{w}}" for v, w in zip(cells, widths, strict=True)))
    print(
        f"(top-{args.top_k} ids; threshold {figure(threshold)} cosine at FMR 1e-3; load {figure(os.getloadavg()[0])})"
    )


if __name__ == "__main__":
    main()
