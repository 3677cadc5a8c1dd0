"""The library's own estimator checks over every public estimator.

These replace the scikit-learn common checks that cannot apply to estimators of
the subject table (see ``EXPECTED_FAILED_CHECKS``): index and row order kept, row
alignment, input untouched, clone and pickle round trips, n_jobs invariance.
"""

import pytest

from sklearn_medprep.utils._test_common import TEST_CASES, make_test_case
from sklearn_medprep.utils.estimator_checks import subject_table_checks


def _split(table):
    if isinstance(table, tuple):
        table = table[0]
    return table.drop(columns="y"), table["y"]


@pytest.mark.parametrize("check", subject_table_checks(), ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", sorted(TEST_CASES))
def test_subject_table_checks(name, check):
    # the test instances of every public estimator (coverage is asserted by
    # tests/test_common.py::test_every_estimator_has_a_test_case_and_reasons)
    estimator, table = make_test_case(name)
    X, y = _split(table)
    check(estimator, X, y)
