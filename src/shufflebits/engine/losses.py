"""The two BoT losses: label-smoothed identity cross-entropy and batch-hard triplet."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pairwise_euclidean(features: torch.Tensor) -> torch.Tensor:
    """``(n, n)`` Euclidean distances, clamped before the root so gradients stay finite at 0."""
    squared = features.pow(2).sum(1, keepdim=True)
    return (squared + squared.t() - 2 * features @ features.t()).clamp(min=1e-12).sqrt()


def batch_hard_triplet_loss(features: torch.Tensor, labels: torch.Tensor, margin: float = 0.3) -> torch.Tensor:
    """Hermans et al.'s batch-hard triplet loss: each anchor's farthest positive vs nearest negative.

    Anchors without a negative in the batch contribute 0 (their nearest negative is at infinity).
    """
    distances = pairwise_euclidean(features)
    same = labels[:, None] == labels[None, :]
    hardest_positive = distances.masked_fill(~same, 0).amax(1)
    hardest_negative = distances.masked_fill(same, float("inf")).amin(1)
    return F.relu(hardest_positive - hardest_negative + margin).mean()


def identity_loss(logits: torch.Tensor, labels: torch.Tensor, smoothing: float = 0.1) -> torch.Tensor:
    """Cross-entropy with label smoothing (BoT's regulariser against over-confident IDs)."""
    return F.cross_entropy(logits, labels, label_smoothing=smoothing)
