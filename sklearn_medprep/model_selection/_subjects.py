"""Site and subject of each row, and the subjects a split puts on both sides.

A table with several rows per subject (ROIs from ``expand_labels``, lesions,
visits) leaks when rows of one subject are in the training and the test rows of
a split. The helpers here read each row's site and subject (from an argument, a
column of ``X`` or its index), count such subjects split by split
(:func:`subject_overlap`) and build the :class:`SubjectOverlapWarning` of the
splitters that are not told the subjects.
"""

import warnings

import numpy as np
import pandas as pd
from sklearn.utils import Bunch, check_array

from ..exceptions import SubjectOverlapWarning, SubjectTableError, plain

__all__ = ["subject_overlap"]

_OVERLAP_COLUMNS = (
    "n_train_subjects",
    "n_test_subjects",
    "n_overlap",
    "n_overlap_test_rows",
    "example",
)


def _row_label(X, position):
    return X.index[position] if isinstance(X, pd.DataFrame) else position


def _refuse_missing(values, X, what, column, advice=""):
    missing = pd.isna(values)
    if missing.any():
        position = int(np.flatnonzero(missing)[0])
        raise SubjectTableError(
            f"{what} is missing{advice}", row=_row_label(X, position), column=column
        )


def _check_values(values, X, name):
    """An argument holding one value per row of X: 1-D, one per row."""
    values = check_array(
        values, input_name=name, ensure_2d=False, dtype=None, ensure_all_finite=False
    )
    if values.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {values.shape}.")
    if X is not None and hasattr(X, "shape") and X.shape[0] != values.shape[0]:
        raise ValueError(
            f"{name} has {values.shape[0]} values for {X.shape[0]} rows of X."
        )
    return values


def site_of_rows(X, values, site, *, name="groups"):
    """Site of each row: ``values`` (argument ``name``), else X's ``site`` column."""
    if values is not None:
        values = _check_values(values, X, name)
    elif isinstance(X, pd.DataFrame):
        if site not in X.columns:
            raise SubjectTableError(
                f"no site column in X and {name} is None", column=site
            )
        values = X[site].to_numpy()
    else:
        raise ValueError(
            f"The sites are read from {name} or, when {name} is None, from the "
            f"column {site!r} of a DataFrame X; got {name}=None and X of type "
            f"{type(X).__name__}."
        )
    _refuse_missing(values, X, "site", site)
    return values


def subject_of_rows(
    X, values, subject, *, name="groups", owner="the splitter", advice=""
):
    """Subject of each row: ``values``, else X's ``subject`` column, else its index.

    The index is read only when ``subject`` is None; a named column that X
    lacks is an error (a misspelt name must not split rows as subjects).
    """
    if values is not None:
        values = _check_values(values, X, name)
        _refuse_missing(values, X, f"subject is missing in {name}", None)
        return values
    if not isinstance(X, pd.DataFrame):
        raise ValueError(
            f"{owner} needs the subject of each row: pass {name}= (one subject id "
            f"per row) or a DataFrame X with a {subject!r} column; got {name}=None "
            f"and X of type {type(X).__name__}."
        )
    if subject is None:
        values = X.index.to_numpy()
        _refuse_missing(values, X, "subject (the index) is missing", None)
        return values
    if subject not in X.columns:
        raise SubjectTableError(
            f"no subject column in X and {name} is None: pass {name}= (one subject "
            "id per row), name the subject column with subject=, or set "
            "subject=None to read the subjects from the index",
            column=subject,
        )
    values = X[subject].to_numpy()
    _refuse_missing(values, X, "subject", subject, advice)
    return values


def subject_hint(X, subject):
    """Subject ids a table carries when a splitter is not told them.

    The ``subject`` column of a DataFrame X, else its index when it repeats;
    ``(None, None)`` otherwise. Missing ids are left out of the counts.

    Returns
    -------
    ids : ndarray or None
    source : str or None
        Where the ids come from, for messages.
    """
    if not isinstance(X, pd.DataFrame):
        return None, None
    if subject is not None and subject in X.columns:
        return X[subject].to_numpy(), f"the {subject!r} column"
    if X.index.has_duplicates:
        return X.index.to_numpy(), "the repeated index of X"
    return None, None


def straddlers(fold_of, ids):
    """Subjects whose rows are in more than one test fold of a partition.

    Parameters
    ----------
    fold_of : ndarray of int
        Test fold (or site) of each row.
    ids : ndarray
        Subject of each row (missing ids ignored).

    Returns
    -------
    Bunch
        ``n_subjects`` (distinct subjects), ``n_straddling`` (subjects in two or
        more folds), ``n_pairs`` (their subject-fold pairs), ``example`` (the
        first such subject in row order, or None) and ``example_folds`` (its
        sorted folds).
    """
    codes, uniques = pd.factorize(pd.Series(ids, dtype=object), use_na_sentinel=True)
    known = codes >= 0
    pairs = np.unique(np.column_stack([codes[known], fold_of[known]]), axis=0)
    touched = np.bincount(pairs[:, 0], minlength=len(uniques))
    straddling = np.flatnonzero(touched > 1)  # codes follow first appearance
    first = straddling[0] if straddling.size else None
    return Bunch(
        n_subjects=len(uniques),
        n_straddling=int(straddling.size),
        n_pairs=int(touched[straddling].sum()),
        example=None if first is None else plain(uniques[first]),
        example_folds=[]
        if first is None
        else [int(f) for f in pairs[pairs[:, 0] == first, 1]],
    )


def warn_subject_overlap(owner, fold_of, ids, source):
    """Warn when the folds put rows of one subject on both sides of a split."""
    found = straddlers(fold_of, ids)
    if not found.n_straddling:
        return
    warnings.warn(
        f"{owner} put rows of {found.n_straddling} of {found.n_subjects} subjects "
        f"(read from {source}) in the training and the test rows of a split "
        f"({found.n_pairs} subject-split overlaps; e.g. subject "
        f"{found.example!r} is in test folds {found.example_folds}): their rows "
        "leak from training to test. Keep each subject in one test fold with "
        "SiteStratifiedGroupKFold (it reads the same subject column, or groups= "
        "subject ids). If the index does not name subjects (labels repeated by "
        "pd.concat), reset it.",
        SubjectOverlapWarning,
        stacklevel=3,
    )


def subject_overlap(cv, X, y=None, groups=None, *, subject="subject", params=None):
    """Count, split by split, the subjects with rows on both sides.

    A subject with several rows (ROIs, lesions, visits) whose rows are in the
    training and the test rows of one split leaks: the model is tested on a
    subject it was trained on. Run this on any splitter before trusting its
    scores.

    Parameters
    ----------
    cv : cross-validation splitter
        Any object with ``split(X, y, groups, **params)`` (scikit-learn's or this
        package's).
    X : pandas.DataFrame or array-like of shape (n_samples, n_columns)
        Data given to ``cv.split``.
    y : array-like of shape (n_samples,), default=None
        Target given to ``cv.split``.
    groups : array-like of shape (n_samples,), default=None
        Groups given to ``cv.split`` (what they mean is the splitter's: the site
        for :class:`SiteStratifiedKFold`, the subject for
        :class:`SiteStratifiedGroupKFold`).
    subject : str, array-like of shape (n_samples,) or None, default="subject"
        The subject of each row: a column of ``X``, one id per row, or None for
        the index of ``X``.
    params : dict, default=None
        Further keyword arguments of ``cv.split`` (e.g. ``{"sites": sites}``).

    Returns
    -------
    pandas.DataFrame
        One row per split (index ``split``) with the columns
        ``n_train_subjects``, ``n_test_subjects``, ``n_overlap`` (subjects with
        rows on both sides), ``n_overlap_test_rows`` (test rows of those
        subjects) and ``example`` (one such subject, or None).

    Raises
    ------
    SubjectTableError
        When the subject column is absent or a subject id is missing (naming the
        column or row).

    See Also
    --------
    SiteStratifiedGroupKFold : Site-stratified folds that keep subjects whole.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from sklearn.model_selection import KFold
    >>> from sklearn_medprep.model_selection import subject_overlap
    >>> X = pd.DataFrame({"subject": np.repeat(["s1", "s2", "s3", "s4"], 2),
    ...                   "f": np.arange(8.0)})
    >>> table = subject_overlap(KFold(3), X)  # s2's rows are in folds 0 and 1
    >>> table["n_overlap"].tolist(), table["example"].tolist()
    ([1, 1, 0], ['s2', 's2', None])
    """
    if isinstance(subject, str) or subject is None:
        ids = subject_of_rows(X, None, subject, owner="subject_overlap")
    else:
        ids = subject_of_rows(X, subject, None, name="subject")
    codes, uniques = pd.factorize(pd.Series(ids, dtype=object))
    n = len(uniques)
    columns = {name: [] for name in _OVERLAP_COLUMNS}
    for train, test in cv.split(X, y, groups, **(params or {})):
        in_train = np.bincount(codes[train], minlength=n) > 0
        in_test = np.bincount(codes[test], minlength=n) > 0
        both = np.flatnonzero(in_train & in_test)
        columns["n_train_subjects"].append(int(in_train.sum()))
        columns["n_test_subjects"].append(int(in_test.sum()))
        columns["n_overlap"].append(int(both.size))
        columns["n_overlap_test_rows"].append(int(np.isin(codes[test], both).sum()))
        columns["example"].append(plain(uniques[both[0]]) if both.size else None)
    columns["example"] = pd.Series(columns["example"], dtype=object)
    out = pd.DataFrame(columns)
    out.index.name = "split"
    return out
