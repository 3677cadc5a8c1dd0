"""Pure pandas rules of the subject table: shape, unique labels, row alignment.

Nothing here reads an image, so that table-only estimators (ComBat on a
feature table) load neither SimpleITK nor torch.
"""

import pandas as pd

from ..exceptions import SubjectTableError


def check_subject_table(X, *, columns=(), estimator=None):
    """Check that ``X`` is a DataFrame holding ``columns``; return it.

    Parameters
    ----------
    X : object
        The candidate subject table.
    columns : iterable of str
        Columns that must be present (None entries are ignored).
    estimator : str or None
        Name used in messages.

    Returns
    -------
    pandas.DataFrame
    """
    who = f"{estimator} " if estimator else ""
    if not isinstance(X, pd.DataFrame):
        raise TypeError(
            f"{who}expects a subject table (pandas.DataFrame with named columns), "
            f"got {type(X).__name__}"
        )
    if not X.columns.is_unique:
        dup = X.columns[X.columns.duplicated()].unique().tolist()
        raise SubjectTableError(f"duplicate column names {dup}")
    if not X.index.is_unique:
        dup = X.index[X.index.duplicated()].unique().tolist()[:5]
        raise SubjectTableError(
            f"the index must identify rows uniquely; repeated labels {dup}"
        )
    missing = [c for c in columns if c is not None and c not in X.columns]
    if missing:
        raise SubjectTableError(
            f"{who}needs column(s) {missing}, which the table lacks; it has "
            f"{list(X.columns)}",
            column=missing[0],
        )
    return X



def align_rows(values, index, *, what, reference):
    """Return a pandas ``values`` in the row order of ``index``, matched by label.

    pandas objects pair with the rows of a table by index label, never silently
    by position: the same unique labels in another order are reordered, other
    labels are an error. Anything else (arrays) is returned as is (positional).

    Parameters
    ----------
    values : object
        Routed metadata (``sites=``, ``covariates=``) or a second table.
    index : pandas.Index or None
        Rows to match; None (the reference is not a table) returns ``values``.
    what, reference : str
        Names of ``values`` and of the reference table, for the message.

    Returns
    -------
    object
        ``values``, reordered when it is a pandas object.
    """
    if index is None or not isinstance(values, (pd.Series, pd.DataFrame)):
        return values
    if values.index.equals(index):
        return values
    if (
        len(values.index) == len(index)
        and values.index.is_unique
        and index.is_unique
        and values.index.isin(index).all()
    ):
        return values.loc[index]
    missing = index[~index.isin(values.index)]
    first = missing[:1].tolist()[0] if len(missing) else None  # a Python value
    raise SubjectTableError(
        f"{what} does not match the rows of {reference}: it must hold the same "
        f"unique index labels, in any order ({len(index)} rows in {reference}, "
        f"{len(values)} in {what}"
        + (f"; first row missing {what}: {first!r}" if len(missing) else "")
        + "); or give a numpy array in the row order",
        row=first,
    )
