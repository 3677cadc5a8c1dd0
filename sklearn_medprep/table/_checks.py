"""Pure pandas rules of the subject table: shape, unique labels, row alignment,
and the one rule for "is this column numeric".

Nothing here reads an image, so that table-only estimators (ComBat on a
feature table) load neither SimpleITK nor torch.
"""

import numpy as np
import pandas as pd

from ..exceptions import SubjectTableError

__all__ = [
    "align_rows",
    "check_fit_rows",
    "check_subject_table",
    "is_numeric_column",
    "is_numeric_dtype",
    "numeric_columns",
    "parses_as_numbers",
]

#: ``infer_dtype`` answers of an object column whose values are all numbers.
_NUMBERS_AS_OBJECTS = frozenset(
    {"integer", "floating", "mixed-integer-float", "decimal"}
)


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


def check_fit_rows(X, *, estimator, min_rows=1, why=None):
    """Refuse to fit ``estimator`` on fewer than ``min_rows`` rows, clearly.

    The message names the estimator and the count ("0 rows, an empty table"),
    as ``check_subject_table_empty_fit`` and ``check_subject_table_one_row_fit``
    of :mod:`sklearn_medprep.utils.estimator_checks` require.

    Parameters
    ----------
    X : pandas.DataFrame or array-like
        The training table.
    estimator : str or object
        The estimator or its class name.
    min_rows : int, default=1
        Fewest rows ``fit`` accepts.
    why : str or None, default=None
        Why it needs that many (e.g. ``"an ICC compares subjects"``).

    Returns
    -------
    object
        ``X``, unchanged.

    Raises
    ------
    SubjectTableError

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_medprep.table._checks import check_fit_rows
    >>> check_fit_rows(pd.DataFrame({"a": []}), estimator="ComBatHarmonizer")
    Traceback (most recent call last):
    ...
    sklearn_medprep.exceptions.SubjectTableError: ComBatHarmonizer cannot fit on \
0 rows (an empty table)
    """
    name = estimator if isinstance(estimator, str) else type(estimator).__name__
    shape = getattr(X, "shape", None)  # sparse matrices have no len()
    n = shape[0] if shape is not None and len(shape) else len(X)
    if n >= min_rows:
        return X
    if n == 0:
        raise SubjectTableError(f"{name} cannot fit on 0 rows (an empty table)")
    raise SubjectTableError(
        f"{name} needs at least {min_rows} rows to fit, got {n}"
        + (f" ({why})" if why else "")
    )


def is_numeric_dtype(dtype):
    """The dtype half of the one rule for "is this column numeric".

    Integer, unsigned and real floating dtypes are numeric, whether numpy,
    pandas nullable (``Int64``, ``Float64``), sparse or pyarrow-backed. Not
    numeric: booleans (numpy ``bool`` and pandas ``boolean``: a yes/no
    variable is categorical, never a continuous feature), complex numbers,
    dates and durations, categories (even of numbers: a category dtype is a
    declaration that the values are labels), strings (pandas ``str``/``string``)
    and ``object``. The values of an ``object`` column are looked at by
    :func:`is_numeric_column`.

    Parameters
    ----------
    dtype : numpy.dtype or pandas ExtensionDtype
        A column's dtype.

    Returns
    -------
    bool
    """
    return getattr(dtype, "kind", "O") in ("i", "u", "f")


def _is_object(dtype):
    """Numpy ``object`` dtype (not pandas' ``str``, which is text by declaration)."""
    return isinstance(dtype, np.dtype) and dtype.kind == "O"


def is_numeric_column(column, *, name=None, advice=""):
    """The one rule for "is this column numeric", used everywhere.

    ComBat (features and covariates), the site-effect QC (features and
    covariates) and the cohort report (continuous or categorical) all decide
    with this rule. A column is numeric when its dtype is
    (:func:`is_numeric_dtype`): integer, unsigned or real float, numpy or
    pandas nullable (``Int64`` with ``<NA>`` is numeric; its missing cells are
    the caller's business). Booleans, categories, strings, dates and complex
    numbers are not numeric. Text is never read as numbers, even text that
    parses as numbers (identifiers such as ``"001"`` stay text, whatever the
    pandas version stores them as).

    A column of ``object`` dtype whose values (missing cells aside) are all
    numbers (not booleans) is ambiguous: numbers mixed with ``None``, or
    numbers that went through an ``object`` array, could be a measurement or
    codes. It is refused with an error naming the column, never silently
    taken as non-numeric.

    Parameters
    ----------
    column : pandas.Series
        The column.
    name : hashable, default=None
        Column name for the message (default: ``column.name``).
    advice : str, default=""
        Caller-specific advice appended to the message (e.g. ComBat's
        ``categorical=``).

    Returns
    -------
    bool

    Raises
    ------
    SubjectTableError
        ``object`` column holding only numbers.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_medprep.table._checks import is_numeric_column
    >>> is_numeric_column(pd.Series([1.5, None], dtype="Float64"))
    True
    >>> is_numeric_column(pd.Series([True, False]))
    False
    """
    dtype = column.dtype
    if is_numeric_dtype(dtype):
        return True
    if not _is_object(dtype) or len(column) == 0:
        return False
    if pd.api.types.infer_dtype(column, skipna=True) in _NUMBERS_AS_OBJECTS:
        raise SubjectTableError(
            "holds numbers in a column of object dtype (mixed types): it is "
            "ambiguous whether it is numeric or categorical. Give it a numeric "
            "dtype (df[col].astype(float)) or a string or category dtype "
            "(df[col].astype('category'))" + advice,
            column=column.name if name is None else name,
        )
    return False


def numeric_columns(table, *, exclude=()):
    """Names of the numeric columns of ``table``, by :func:`is_numeric_column`.

    Parameters
    ----------
    table : pandas.DataFrame
        The table.
    exclude : iterable of hashable, default=()
        Columns left out (the site, the covariates).

    Returns
    -------
    list
        Column names in table order.

    Raises
    ------
    SubjectTableError
        An ``object`` column (not excluded) holding only numbers.
    """
    exclude = set(exclude)
    names = []
    for position, (name, dtype) in enumerate(zip(table.columns, table.dtypes)):
        if name in exclude:
            continue
        # only object columns need their values looked at (wide tables)
        if is_numeric_dtype(dtype) or (
            _is_object(dtype)
            and is_numeric_column(table.iloc[:, position], name=name)
        ):
            names.append(name)
    return names


def parses_as_numbers(values):
    """True when every value is a number or a text that parses as one.

    For text arrays that numpy made of mixed columns (``np.column_stack`` of
    ages and sexes stores ``'23.4'``): there, text holding numbers is the trace
    of a numeric column. Booleans are not numbers (the rule of
    :func:`is_numeric_column`); missing values (``None``, NaN) are skipped.

    Parameters
    ----------
    values : array-like
        One column's values.

    Returns
    -------
    bool
    """
    values = np.asarray(values)
    if values.dtype.kind == "b":
        return False
    if values.dtype == object and any(
        isinstance(v, (bool, np.bool_)) for v in values.ravel()
    ):
        return False
    try:
        np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return True


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
