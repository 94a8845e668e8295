"""Collapse metrics (pure functions), their registry, and the scorers built on them.

A collapse metric registered with :func:`register_collapse_metric` is at once a
function (:func:`collapse_metrics`), a scorer (:class:`CollapseScorer`,
:func:`get_collapse_scorer`), a :class:`~skcollapse.callbacks.CollapseMonitor`
column and a column of ``skcollapse score``.
"""

from skcollapse.metrics._beyond_accuracy import (
    average_popularity,
    catalog_coverage,
    gini_index,
    long_tail_share,
)
from skcollapse.metrics._collapse import (
    collapse_metrics,
    condition_number,
    effective_rank,
    information_abundance,
    normalized_std,
    stable_rank,
)
from skcollapse.metrics._evaluation import (
    RankingScorer,
    evaluate_ranking,
    ranking_scorer,
)
from skcollapse.metrics._frequency import recommendation_frequency
from skcollapse.metrics._get_scorer import (
    get_collapse_scorer,
    get_collapse_scorer_names,
)

# deprecated aliases of the two above (FutureWarning), not in __all__
from skcollapse.metrics._get_scorer import get_scorer as get_scorer
from skcollapse.metrics._get_scorer import get_scorer_names as get_scorer_names
from skcollapse.metrics._gram import GramAccumulator, TorchGramAccumulator
from skcollapse.metrics._popularity import (
    norm_popularity_correlation,
    popularity_bucket_metrics,
    popularity_buckets,
    popularity_counts,
)
from skcollapse.metrics._popularity_views import (
    popularity_alignment,
    popularity_collapse,
    table_popularity,
    weighted_uniformity,
)
from skcollapse.metrics._ranking import (
    hit_rate_at_k,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)
from skcollapse.metrics._reference import random_reference
from skcollapse.metrics._registry import (
    CollapseMetric,
    get_collapse_metric,
    get_collapse_metric_names,
    metric_of_column,
    register_collapse_metric,
    resolve_collapse_metrics,
    unregister_collapse_metric,
)
from skcollapse.metrics._scorers import CollapseScorer, ErankScorer, IAScorer
from skcollapse.metrics._spectrum import singular_values
from skcollapse.metrics._sub_embedding import (
    embedding_set_diversity,
    field_ia,
    sub_embedding_ia,
)
from skcollapse.metrics._tables import get_embedding_tables
from skcollapse.metrics._uniformity import alignment, uniformity

__all__ = [
    "CollapseMetric",
    "CollapseScorer",
    "ErankScorer",
    "GramAccumulator",
    "IAScorer",
    "RankingScorer",
    "TorchGramAccumulator",
    "alignment",
    "average_popularity",
    "catalog_coverage",
    "collapse_metrics",
    "condition_number",
    "effective_rank",
    "embedding_set_diversity",
    "evaluate_ranking",
    "field_ia",
    "get_collapse_metric",
    "get_collapse_metric_names",
    "get_collapse_scorer",
    "get_collapse_scorer_names",
    "get_embedding_tables",
    "gini_index",
    "hit_rate_at_k",
    "information_abundance",
    "long_tail_share",
    "map_at_k",
    "metric_of_column",
    "mrr_at_k",
    "ndcg_at_k",
    "norm_popularity_correlation",
    "normalized_std",
    "popularity_alignment",
    "popularity_bucket_metrics",
    "popularity_buckets",
    "popularity_collapse",
    "popularity_counts",
    "precision_at_k",
    "random_reference",
    "ranking_scorer",
    "recall_at_k",
    "recommendation_frequency",
    "register_collapse_metric",
    "resolve_collapse_metrics",
    "singular_values",
    "stable_rank",
    "sub_embedding_ia",
    "table_popularity",
    "uniformity",
    "unregister_collapse_metric",
    "weighted_uniformity",
]
