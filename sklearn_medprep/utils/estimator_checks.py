"""The library's own estimator checks, for estimators of the subject table.

scikit-learn's common checks feed anonymous numeric arrays; the estimators of
this library read named image and metadata columns of a subject table. These
checks replace the scikit-learn checks that cannot apply (listed, with reasons,
in ``sklearn_medprep.utils._test_common.EXPECTED_FAILED_CHECKS``) and add the
contract of the subject table: index and row order preserved, row alignment,
input not modified, clone/pickle round trips, ``n_jobs`` invariance, and the
two degenerate tables, empty and one row:

* ``fit`` on a zero-row table raises a ``ValueError`` (``SubjectTableError``
  included) naming the estimator and the problem ("0 rows", "empty"): nothing
  can be learnt from no subject, and a silent fit would only fail later;
* ``transform``/``predict`` of a zero-row table after fitting on a normal one
  returns zero rows, with the columns of the full output (the same trailing
  shape for arrays): an empty batch (an empty cross-validation fold, a filter
  that kept no subject) is valid input to a fitted estimator, for every
  estimator type;
* ``transform``/``predict`` of one row equals that row of the full output,
  index label included;
* ``fit`` on one row either works or, where the estimator needs several rows
  (ComBat needs 2 subjects per site and 2 sites; an ICC needs 2 subjects),
  raises a ``ValueError`` naming the estimator and how many it needs.

Each check takes ``(estimator, X, y)`` where ``X`` is a small subject table.
"""

import copy
import pickle
import re
import warnings

import numpy as np
import pandas as pd
import SimpleITK as sitk
from sklearn.base import clone

from ..io._read import is_image_object, to_sitk

__all__ = [
    "assert_tables_equal",
    "check_subject_table_clone",
    "check_subject_table_does_not_modify_input",
    "check_subject_table_empty_fit",
    "check_subject_table_empty_transform",
    "check_subject_table_index_preserved",
    "check_subject_table_n_jobs_invariance",
    "check_subject_table_one_row_fit",
    "check_subject_table_one_row_transform",
    "check_subject_table_pickle",
    "check_subject_table_row_alignment",
    "subject_table_checks",
]


def _cell_key(cell):
    if is_image_object(cell):
        image = to_sitk(cell)
        return (
            "image",
            sitk.GetArrayFromImage(image).tobytes(),
            image.GetSize(),
            np.round(image.GetSpacing(), 6).tolist(),
            np.round(image.GetOrigin(), 6).tolist(),
            np.round(image.GetDirection(), 6).tolist(),
        )
    return cell


def assert_tables_equal(a, b, *, rtol=0.0, atol=0.0):
    """Assert two outputs are equal, comparing image cells by voxels and geometry.

    Parameters
    ----------
    a, b : pandas.DataFrame or array-like
        Outputs to compare.
    rtol, atol : float, default=0.0
        Tolerances for numeric columns.
    """
    if isinstance(a, pd.DataFrame) or isinstance(b, pd.DataFrame):
        assert isinstance(a, pd.DataFrame) and isinstance(b, pd.DataFrame)
        pd.testing.assert_index_equal(a.index, b.index)
        pd.testing.assert_index_equal(a.columns, b.columns)
        for column in a.columns:
            x, y = a[column], b[column]
            if x.map(is_image_object).any() or y.map(is_image_object).any():
                assert [_cell_key(c) for c in x] == [_cell_key(c) for c in y], column
            elif pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
                np.testing.assert_allclose(
                    x.to_numpy(float),
                    y.to_numpy(float),
                    rtol=rtol,
                    atol=atol,
                    err_msg=f"column {column!r}",
                )
            else:
                pd.testing.assert_series_equal(x, y, check_dtype=False)
    else:
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


def _output(estimator, X, y, method):
    if method == "fit_transform":
        return estimator.fit_transform(X, y)
    if method == "fit_resample":
        return estimator.fit_resample(X, y)[0]
    estimator.fit(X, y)
    return getattr(estimator, method)(X)


def _methods(estimator):
    for method in ("transform", "predict", "predict_proba", "decision_function"):
        if hasattr(estimator, method):
            yield method


def check_subject_table_index_preserved(estimator, X, y):
    """Outputs of ``transform``/``predict`` keep the index and row order of X."""
    for method in _methods(estimator):
        out = _output(clone(estimator), X, y, method)
        if isinstance(out, pd.DataFrame):
            pd.testing.assert_index_equal(out.index, X.index)
        else:
            assert len(out) == len(X), (method, len(out), len(X))


def check_subject_table_row_alignment(estimator, X, y):
    """Each output row depends on its own input row only, whatever the row order."""
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(X))
    fitted = clone(estimator).fit(X, y)
    for method in _methods(fitted):
        straight = getattr(fitted, method)(X)
        shuffled = getattr(fitted, method)(X.iloc[perm])
        if isinstance(straight, pd.DataFrame):
            assert_tables_equal(shuffled, straight.iloc[perm], rtol=1e-12, atol=1e-12)
        else:
            assert_tables_equal(
                np.asarray(shuffled), np.asarray(straight)[perm], rtol=1e-12, atol=1e-12
            )
        # one row alone gives the same output as within the batch
        first = getattr(fitted, method)(X.iloc[[0]])
        if isinstance(straight, pd.DataFrame):
            assert_tables_equal(first, straight.iloc[[0]], rtol=1e-12, atol=1e-12)


def check_subject_table_does_not_modify_input(estimator, X, y):
    """fit, transform and predict leave the input table untouched."""
    before = X.copy(deep=True)
    fitted = clone(estimator).fit(X, y)
    for method in _methods(fitted):
        getattr(fitted, method)(X)
    assert_tables_equal(X, before)


def check_subject_table_clone(estimator, X, y):
    """Clone gives unfitted equal parameters, and fitting does not change them."""
    params = copy.deepcopy(estimator.get_params(deep=False))
    cloned = clone(estimator)
    cloned.fit(X, y)
    for key, value in estimator.get_params(deep=False).items():
        assert repr(value) == repr(params[key]), key
    for key, value in cloned.get_params(deep=False).items():
        assert repr(value) == repr(params[key]), key
    # no fitted attribute survives clone (skorch nets set a few unfitted
    # ones, e.g. initialized_=False, in __init__: those of a new instance pass)
    new = set(vars(type(estimator)(**estimator.get_params(deep=False))))
    assert not [
        k
        for k in vars(clone(estimator))
        if k.endswith("_") and not k.startswith("_") and k not in new
    ]


def check_subject_table_pickle(estimator, X, y):
    """A pickled fitted estimator gives exactly the same outputs."""
    fitted = clone(estimator).fit(X, y)
    restored = pickle.loads(pickle.dumps(fitted))
    for method in _methods(fitted):
        assert_tables_equal(getattr(restored, method)(X), getattr(fitted, method)(X))


def check_subject_table_n_jobs_invariance(estimator, X, y):
    """Outputs with ``n_jobs=2`` equal those with ``n_jobs=1``."""
    if estimator.get_params().get("n_jobs", "deprecated") == "deprecated":
        return  # no n_jobs, or a deprecated one (setting it warns)
    one = clone(estimator).set_params(n_jobs=1)
    two = clone(estimator).set_params(n_jobs=2)
    method = "fit_resample" if hasattr(estimator, "fit_resample") else "fit_transform"
    if not hasattr(estimator, method):
        method = next(_methods(estimator))
    assert_tables_equal(_output(one, X, y, method), _output(two, X, y, method))


def _estimator_names(estimator):
    """Names a message may use for ``estimator``: its class and library bases.

    ``ComBatHarmonizer`` may also say ``ComBat`` (the name without its role
    suffix); a subclass may use the names of its library base classes.
    """
    names = set()
    for cls in type(estimator).__mro__:
        ours = cls.__module__.startswith("sklearn_medprep")
        if cls is type(estimator) or (ours and not cls.__name__.startswith("_")):
            names.add(cls.__name__)
            short = re.sub(r"(Harmonizer|Extractor|Selector)$", "", cls.__name__)
            names.add(short)
    return names


def _assert_clear_error(estimator, error, problem, what):
    message = str(error)
    assert isinstance(error, ValueError), (
        f"{what}: {type(estimator).__name__} raised {type(error).__name__} "
        f"({message[:200]!r}), expected a ValueError naming the problem"
    )
    names = _estimator_names(estimator)
    assert any(name in message for name in names), (
        f"{what}: the message {message[:200]!r} does not name the estimator "
        f"({sorted(names)})"
    )
    assert re.search(problem, message, flags=re.IGNORECASE), (
        f"{what}: the message {message[:200]!r} does not say {problem!r}"
    )


def _fit_quietly(estimator, X, y):
    """Fit a clone, warnings ignored: a degenerate table may well warn (a
    one-row table has constant columns); the checks judge the error only.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return clone(estimator).fit(X, y)


def check_subject_table_empty_fit(estimator, X, y):
    """``fit`` on a zero-row table raises a ValueError naming estimator and problem."""
    try:
        _fit_quietly(estimator, X.iloc[:0], y.iloc[:0] if y is not None else None)
    except Exception as error:  # noqa: BLE001 - the check judges the error
        _assert_clear_error(
            estimator, error, r"\b0 rows\b|\bempty\b|\bzero rows\b|\bno rows?\b",
            "fit on a zero-row table",
        )
        return
    raise AssertionError(
        f"{type(estimator).__name__}.fit accepted a zero-row table; it must raise "
        "a ValueError naming the estimator and '0 rows'"
    )


def check_subject_table_empty_transform(estimator, X, y):
    """Zero rows in, zero rows out (after a fit on the table), same columns."""
    fitted = clone(estimator).fit(X, y)
    for method in _methods(fitted):
        full = getattr(fitted, method)(X)
        empty = getattr(fitted, method)(X.iloc[:0])
        if isinstance(full, pd.DataFrame):
            assert isinstance(empty, pd.DataFrame), method
            assert len(empty) == 0, (method, len(empty))
            pd.testing.assert_index_equal(empty.columns, full.columns)
            pd.testing.assert_series_equal(empty.dtypes, full.dtypes, obj=method)
        else:
            empty, full = np.asarray(empty), np.asarray(full)
            assert empty.shape == (0, *full.shape[1:]), (method, empty.shape)
            assert empty.dtype == full.dtype, (method, empty.dtype, full.dtype)


def check_subject_table_one_row_transform(estimator, X, y):
    """One row alone gives that row of the full output, index label included."""
    fitted = clone(estimator).fit(X, y)
    for method in _methods(fitted):
        full = getattr(fitted, method)(X)
        for i in sorted({len(X) // 2, len(X) - 1}):
            one = getattr(fitted, method)(X.iloc[[i]])
            if isinstance(full, pd.DataFrame):
                assert isinstance(one, pd.DataFrame), method
                pd.testing.assert_index_equal(one.index, X.index[[i]])
                assert_tables_equal(one, full.iloc[[i]], rtol=1e-12, atol=1e-12)
            else:
                assert len(one) == 1, (method, len(one))
                assert_tables_equal(
                    np.asarray(one), np.asarray(full)[[i]], rtol=1e-12, atol=1e-12
                )


def check_subject_table_one_row_fit(estimator, X, y):
    """``fit`` on one row works, or raises a ValueError saying what it needs."""
    try:
        _fit_quietly(estimator, X.iloc[[0]], y.iloc[[0]] if y is not None else None)
    except Exception as error:  # noqa: BLE001 - the check judges the error
        _assert_clear_error(
            estimator, error, r"at least \d+|\bneeds? \d+", "fit on a one-row table"
        )


def subject_table_checks():
    """Return every check of this module, for parametrizing a test.

    Returns
    -------
    list of callable

    Examples
    --------
    >>> from sklearn_medprep.utils.estimator_checks import subject_table_checks
    >>> [check.__name__ for check in subject_table_checks()][:2]
    ['check_subject_table_index_preserved', 'check_subject_table_row_alignment']
    """
    return [
        check_subject_table_index_preserved,
        check_subject_table_row_alignment,
        check_subject_table_does_not_modify_input,
        check_subject_table_clone,
        check_subject_table_pickle,
        check_subject_table_n_jobs_invariance,
        check_subject_table_empty_fit,
        check_subject_table_empty_transform,
        check_subject_table_one_row_transform,
        check_subject_table_one_row_fit,
    ]
