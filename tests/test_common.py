"""scikit-learn's estimator checks over every public estimator, found automatically."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_medprep.utils import all_estimators
from sklearn_medprep.utils._test_common import (
    EXPECTED_FAILED_CHECKS,
    TEST_CASES,
    expected_failed_checks,
    init_params,
)

ESTIMATORS = all_estimators()


def _instances():
    for name, cls in ESTIMATORS:
        yield cls(**init_params(name))


@parametrize_with_checks(
    list(_instances()), expected_failed_checks=expected_failed_checks
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_every_estimator_has_a_test_case_and_reasons():
    names = {name for name, _ in ESTIMATORS}
    assert names == set(TEST_CASES), (
        "TEST_CASES in sklearn_medprep/utils/_test_common.py must have one entry "
        f"per public estimator: missing {sorted(names - set(TEST_CASES))}, "
        f"unknown {sorted(set(TEST_CASES) - names)}"
    )
    assert set(EXPECTED_FAILED_CHECKS) <= names
    for name, table in EXPECTED_FAILED_CHECKS.items():
        for check, reason in table.items():
            assert check.startswith("check_"), (name, check)
            assert isinstance(reason, str) and len(reason) > 20, (name, check)


@pytest.mark.parametrize("name, cls", ESTIMATORS)
def test_init_stores_params_unchanged(name, cls):
    params = init_params(name)
    assert params, f"give {name} a non-default argument in TEST_CASES"
    est = cls(**params)
    for key, value in params.items():
        assert getattr(est, key) is value, key
    # and get_params returns them as given (no renaming, no copies)
    got = est.get_params(deep=False)
    for key, value in params.items():
        assert got[key] is value, key
