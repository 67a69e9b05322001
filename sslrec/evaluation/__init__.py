"""Full-ranking evaluation and ranking metrics."""

from sslrec.evaluation.metrics import METRICS
from sslrec.evaluation.ranker import Evaluator, hit_matrix, rank_top_k, top_k
from sslrec.evaluation.scoring import InnerProductScorer, Scorer

__all__ = [
    "METRICS",
    "Evaluator",
    "InnerProductScorer",
    "Scorer",
    "hit_matrix",
    "rank_top_k",
    "top_k",
]
