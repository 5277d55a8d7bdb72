"""The shared training loop: the same shuffles, batches and skips as the loops it replaced."""

from __future__ import annotations

import torch

from shufflebits.engine.loop import run_epoch


def test_run_epoch_draws_one_shuffle_and_skips_single_row_batches():
    seen = []

    def step(batch):
        seen.append(batch.tolist())
        return 1.5

    total = run_epoch(9, 4, torch.Generator().manual_seed(5), step)
    order = torch.randperm(9, generator=torch.Generator().manual_seed(5)).tolist()
    assert seen == [order[0:4], order[4:8]]  # the last batch holds one row: BatchNorm cannot train on it
    assert total == 1.5 * 8


def test_run_epoch_leaves_the_generator_where_one_randperm_leaves_it():
    generator, reference = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    run_epoch(6, 2, generator, lambda batch: None)
    torch.randperm(6, generator=reference)
    assert torch.equal(torch.randperm(50, generator=generator), torch.randperm(50, generator=reference))


def test_steps_returning_none_add_nothing():
    assert run_epoch(6, 2, torch.Generator().manual_seed(0), lambda batch: None) == 0.0
