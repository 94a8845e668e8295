"""scikit-learn's estimator checks for the collapse scorers."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skcollapse.metrics import ErankScorer, IAScorer

# No expected failures: the scorers pass every check of scikit-learn's suite.
_XFAILS = {}


@parametrize_with_checks(
    [
        ErankScorer(),
        IAScorer(),
        ErankScorer(spectrum="eig", center=True, row_normalize=True, normalize=True),
        IAScorer(table="item", reduce="min", normalize=True),
    ],
    expected_failed_checks=lambda est: _XFAILS,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
