"""One epoch of minibatch training: the loop the attack models share, with the step left to the caller.

The order comes from one ``torch.randperm`` draw on the caller's generator per
epoch, so callers that share a generator (a decoder and its perceptual network)
keep drawing from one stream. Batches under two rows are skipped: BatchNorm
cannot normalise a single row in training mode.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def run_epoch(
    n: int,
    batch_size: int,
    generator: torch.Generator,
    step: Callable[[torch.Tensor], float | None],
    device: str | torch.device = "cpu",
) -> float:
    """Call ``step(batch)`` on row indices of a fresh shuffle of ``range(n)``; return the sum of loss x rows.

    ``step`` returns the batch's mean loss, or ``None`` to add nothing to the
    total (it learned nothing from the batch, or its caller keeps no total).
    """
    order = torch.randperm(n, generator=generator).to(device)
    total = 0.0
    for start in range(0, n, batch_size):
        batch = order[start : start + batch_size]
        if len(batch) < 2:  # BatchNorm needs two rows
            continue
        loss = step(batch)
        if loss is not None:
            total += loss * len(batch)
    return total
