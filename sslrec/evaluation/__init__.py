"""Full-ranking evaluation and ranking metrics."""

from sslrec.evaluation.metrics import METRICS
from sslrec.evaluation.ranker import Evaluator, hit_matrix, top_k

__all__ = ["METRICS", "Evaluator", "hit_matrix", "top_k"]
