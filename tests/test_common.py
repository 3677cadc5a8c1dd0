"""scikit-learn's estimator checks over every public estimator, found automatically."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_medprep.utils import all_estimators
from sklearn_medprep.utils._test_common import (
    EXPECTED_FAILED_CHECKS,
    INIT_PARAMS,
    expected_failed_checks,
)

ESTIMATORS = all_estimators()


def _instances():
    for name, cls in ESTIMATORS:
        yield cls(**INIT_PARAMS.get(name, {}))


@parametrize_with_checks(
    list(_instances()), expected_failed_checks=expected_failed_checks
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_expected_failures_have_reasons_and_known_estimators():
    names = {name for name, _ in ESTIMATORS}
    for name in {**EXPECTED_FAILED_CHECKS, **INIT_PARAMS}:
        assert name in names, (
            f"{name} in the common-test table is not a public estimator"
        )
    for name, table in EXPECTED_FAILED_CHECKS.items():
        for check, reason in table.items():
            assert check.startswith("check_"), (name, check)
            assert isinstance(reason, str) and len(reason) > 20, (name, check)


@pytest.mark.parametrize("name, cls", ESTIMATORS)
def test_init_stores_params_unchanged(name, cls):
    params = INIT_PARAMS.get(name, {})
    est = cls(**params)
    for key, value in params.items():
        assert getattr(est, key) is value
