"""The library's own estimator checks over every public estimator.

These replace the scikit-learn common checks that cannot apply to estimators of
the subject table (see ``EXPECTED_FAILED_CHECKS``): index and row order kept, row
alignment, input untouched, clone and pickle round trips, n_jobs invariance,
empty and one-row tables. A check an estimator does not pass yet is a strict
expected failure with its reason in ``EXPECTED_FAILED_CHECKS``.
"""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin

from sklearn_medprep.exceptions import SubjectTableError
from sklearn_medprep.table._checks import check_fit_rows
from sklearn_medprep.utils._test_common import (
    EXPECTED_FAILED_CHECKS,
    TEST_CASES,
    make_test_case,
)
from sklearn_medprep.utils.estimator_checks import (
    check_subject_table_empty_fit,
    check_subject_table_empty_transform,
    check_subject_table_one_row_fit,
    check_subject_table_one_row_transform,
    subject_table_checks,
)


def _split(table):
    if isinstance(table, tuple):
        table = table[0]
    return table.drop(columns="y"), table["y"]


@pytest.mark.parametrize("check", subject_table_checks(), ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", sorted(TEST_CASES))
def test_subject_table_checks(name, check, request):
    reason = EXPECTED_FAILED_CHECKS.get(name, {}).get(check.__name__)
    if reason is not None:
        request.applymarker(pytest.mark.xfail(reason=reason, strict=True))
    # the test instances of every public estimator (coverage is asserted by
    # tests/test_common.py::test_every_estimator_has_a_test_case_and_reasons)
    estimator, table = make_test_case(name)
    X, y = _split(table)
    check(estimator, X, y)


# The degenerate-table checks can fail: small estimators that break each rule.
class _Centerer(TransformerMixin, BaseEstimator):
    """Subtracts the training mean of ``a``; refuses 0 rows as the checks want."""

    def __init__(self, empty="refuse", batch_mean=False, one_row="ok"):
        self.empty = empty
        self.batch_mean = batch_mean
        self.one_row = one_row

    def fit(self, X, y=None):
        if len(X) == 0 and self.empty == "refuse":
            check_fit_rows(X, estimator=self)
        if len(X) == 0 and self.empty == "vague":
            raise ValueError("cannot fit")
        if len(X) == 1 and self.one_row == "index":
            X.iloc[1]  # IndexError
        if len(X) == 1 and self.one_row == "refuse":
            check_fit_rows(X, estimator=self, min_rows=2, why="a spread")
        self.mean_ = X["a"].mean() if len(X) else 0.0
        return self

    def transform(self, X):
        mean = X["a"].mean() if self.batch_mean else self.mean_
        out = X.assign(a=X["a"] - mean)
        return out if len(X) else out.drop(columns="b")


def _xy():
    X = pd.DataFrame(
        {"a": np.arange(6.0) ** 2, "b": list("uvwxyz")},
        index=[f"s{i}" for i in range(6)],
    )
    return X, pd.Series(np.arange(6), index=X.index)


def test_empty_fit_check_fails_on_silent_or_vague_errors():
    X, y = _xy()
    check_subject_table_empty_fit(_Centerer(), X, y)
    with pytest.raises(AssertionError, match="accepted a zero-row table"):
        check_subject_table_empty_fit(_Centerer(empty="accept"), X, y)
    with pytest.raises(AssertionError, match="does not name the estimator"):
        check_subject_table_empty_fit(_Centerer(empty="vague"), X, y)


def test_empty_transform_check_wants_the_full_columns():
    X, y = _xy()
    with pytest.raises(AssertionError):
        check_subject_table_empty_transform(_Centerer(), X, y)


def test_one_row_checks():
    X, y = _xy()
    with pytest.raises(AssertionError):  # the batch mean: not the full output's row
        check_subject_table_one_row_transform(_Centerer(batch_mean=True), X, y)
    check_subject_table_one_row_fit(_Centerer(), X, y)
    check_subject_table_one_row_fit(_Centerer(one_row="refuse"), X, y)
    with pytest.raises(AssertionError, match="raised IndexError"):
        check_subject_table_one_row_fit(_Centerer(one_row="index"), X, y)


def test_check_fit_rows_messages():
    X, _ = _xy()
    assert check_fit_rows(X, estimator="ComBatHarmonizer") is X
    with pytest.raises(SubjectTableError, match=r"^ComBatHarmonizer cannot fit on 0"):
        check_fit_rows(X.iloc[:0], estimator="ComBatHarmonizer")
    with pytest.raises(
        SubjectTableError, match=r"_Centerer needs at least 4 rows to fit, got 1 \(x\)"
    ):
        check_fit_rows(X.iloc[:1], estimator=_Centerer(), min_rows=4, why="x")
