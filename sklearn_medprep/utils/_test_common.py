"""Central table for the common estimator tests (imbalanced-learn/nilearn style).

``INIT_PARAMS`` gives small constructor arguments per estimator for
:func:`sklearn.utils.estimator_checks.parametrize_with_checks`.
``EXPECTED_FAILED_CHECKS`` is the one table of scikit-learn checks that an
estimator is known to fail, each with the reason and the domain check (in
``sklearn_medprep.utils.estimator_checks`` or the estimator's own tests) that
replaces it.

Each estimator module's author adds the entries for that estimator here, and only
here.
"""

__all__ = ["INIT_PARAMS", "EXPECTED_FAILED_CHECKS", "expected_failed_checks"]

# Reasons shared by the image estimators: scikit-learn's checks feed anonymous
# numeric arrays, while these read named image columns of a subject table.
_IMAGE_TABLE = (
    "reads named image columns of a subject table, not a numeric array; replaced "
    "by check_subject_table_* in sklearn_medprep.utils.estimator_checks"
)

INIT_PARAMS = {
    # "EstimatorName": dict(param=value, ...),
}

EXPECTED_FAILED_CHECKS = {
    # "EstimatorName": {"check_name": "reason (and the domain check replacing it)"},
}


def expected_failed_checks(estimator):
    """Return the expected failures of ``estimator`` for ``parametrize_with_checks``.

    Parameters
    ----------
    estimator : BaseEstimator
        Instance under test.

    Returns
    -------
    dict
        ``{check_name: reason}``.
    """
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})
