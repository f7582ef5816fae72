"""Placement policies: pure functions from a pod and node facts to verdicts and scores.

``filter`` decides which nodes may host the pod (with a reason for every refusal);
``score`` ranks the rest with a strategy picked by name from :data:`STRATEGIES`.
Nothing here performs I/O, so the extender and the cluster simulator share it.
"""

from beamhub.scheduler.policy.filter import FilterParams, FilterVerdict, filter_nodes
from beamhub.scheduler.policy.score import STRATEGIES, ScoreParams, get_strategy, score_nodes
from beamhub.scheduler.policy.view import NodeView

__all__ = [
    "STRATEGIES",
    "FilterParams",
    "FilterVerdict",
    "NodeView",
    "ScoreParams",
    "filter_nodes",
    "get_strategy",
    "score_nodes",
]
