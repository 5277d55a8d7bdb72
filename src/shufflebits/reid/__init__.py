"""Re-ID evaluation: CMC (rank-k), mAP and mINP under the Market-1501 protocol."""

from .metrics import METRICS, distance_matrix, evaluate, evaluate_ranking

__all__ = ["METRICS", "distance_matrix", "evaluate", "evaluate_ranking"]
