"""Reading and checking the input of :class:`~sklearn_medprep.ComBatHarmonizer`.

The subject table (or array) is split into the feature block, the sites, the
covariates and the pass-through columns; the covariates become design
columns; the features are read block by block as float64. The estimator's
parameters are passed explicitly, so that these functions never change it
(except for the ``n_features_in_``/``feature_names_in_`` that
:func:`~sklearn.utils.validation.validate_data` records).
"""

import dataclasses
import numbers
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.utils import check_array
from sklearn.utils.validation import validate_data

from ..exceptions import MedprepWarning, SubjectTableError, plain
from ..table._checks import (
    align_rows,
    check_fit_rows,
    is_numeric_column,
    parses_as_numbers,
)
from . import _design as design
from ._blocks import column_blocks

__all__ = [
    "Batch",
    "TableSpec",
    "check_feature_columns",
    "feature_getter",
    "read_table",
    "rows_getter",
]


@dataclass(frozen=True, eq=False)
class TableSpec:
    """What to read from the input of ComBat: the estimator's column parameters.

    Attributes
    ----------
    site : str or int
        Site column (the ``site`` parameter).
    covariate_columns : list of str or None
        Covariate columns (the ``covariates`` parameter).
    features : list of str or None
        Feature columns (the ``features`` parameter).
    features_seen : array-like of str or None
        Features learned in fit (``features_``); used when ``reset=False``.
    reset : bool
        True in fit, False in transform.
    layout : tuple or None
        ``(columns, positions)`` of the table seen in fit: a table with the
        same columns skips the per-column checks (one comparison of the
        column index, often the same object).
    categorical : list of str or int, or None
        Covariates declared categorical (the ``categorical`` parameter).
    extra_columns : tuple of str
        Further columns of ``X`` a ComBat variant reads (a subject column of
        longitudinal ComBat): each is required, kept out of the features,
        consumed like the site and covariates, and handed over in
        :attr:`Batch.extra`.
    """

    site: object = "site"
    covariate_columns: object = None
    features: object = None
    features_seen: object = None
    reset: bool = True
    layout: tuple = None
    categorical: object = None
    extra_columns: tuple = ()


@dataclass(frozen=True, eq=False)
class Batch:
    """Rows read for ComBat's ``fit`` or ``transform`` (:func:`read_table`).

    A frozen record: a later step returns a copy with its field filled
    (``batch.replace(design_cov=...)``).

    Attributes
    ----------
    table : pandas.DataFrame
        The input (an array wrapped in a DataFrame with columns ``x0, ...``).
    feats : list or ndarray of str
        Feature columns.
    positions : ndarray of int
        Their positions in ``table``.
    site_values : ndarray of shape (n_samples,)
        Site of each row.
    cov : pandas.DataFrame
        Covariates.
    from_table : list of str
        Site, covariate and extra columns read from ``table``.
    get : callable
        Column-block getter of the features (:func:`feature_getter`).
    design_cov : ndarray or None
        Covariate design (set by the estimator's design step).
    sites : BatchSites or None
        Sites of the rows (set by ``transform``'s site step).
    extra : dict
        The values of :attr:`TableSpec.extra_columns`, by column name.
    y : array-like or None
        The training target (``fit``); None in ``transform``, which never
        reads it.
    """

    table: pd.DataFrame
    feats: object
    positions: np.ndarray
    site_values: np.ndarray
    cov: pd.DataFrame
    from_table: list
    get: object
    design_cov: np.ndarray = None
    sites: object = None
    extra: dict = field(default_factory=dict)
    y: object = None

    @property
    def index(self):
        return self.table.index

    @property
    def n_features(self):
        return len(self.feats)

    def replace(self, **changes):
        """A copy with ``changes`` (the record is frozen)."""
        return dataclasses.replace(self, **changes)


def _rows_of(X):
    return X.index if isinstance(X, pd.DataFrame) else None


def _read_sites(X, sites, site, n, index, from_table):
    """Site of each row, from ``sites=`` or the site column of ``X``."""
    if sites is not None:
        sites = align_rows(sites, _rows_of(X), what="sites=", reference="X")
        site_values = check_array(
            sites,
            input_name="sites",
            ensure_2d=False,
            dtype=None,
            ensure_all_finite=False,
        )
        if site_values.ndim != 1 or site_values.shape[0] != n:
            raise ValueError(
                f"sites must have one value per row of X ({n}), got shape "
                f"{site_values.shape}."
            )
    elif isinstance(X, pd.DataFrame) and site in X.columns:
        site_values = X[site].to_numpy()
    elif isinstance(X, pd.DataFrame):
        raise SubjectTableError(
            f"ComBatHarmonizer needs the site of each row: X has no column "
            f"{site!r} and no sites= were passed.",
            column=site,
        )
    else:
        raise ValueError(
            "ComBatHarmonizer needs the site of each row: X is an array without "
            "named columns; pass a DataFrame with a site column or route sites= "
            "(metadata routing)."
        )
    if isinstance(X, pd.DataFrame) and site in X.columns:
        from_table.append(site)
    missing = pd.isna(site_values)
    if missing.any():
        raise SubjectTableError(
            "site is missing", row=design._first_row(index, missing), column=site
        )
    return site_values


def _looks_numeric(values):
    """True when every value is a number or a text that parses as one.

    The rule of :func:`sklearn_medprep.table._checks.parses_as_numbers`
    (booleans are not numbers).
    """
    return parses_as_numbers(values)


def _refuse_ambiguous_array(arr):
    """Refuse a text/object covariate array holding numbers in some column.

    ``np.asarray`` of float age and text sex stores every value as text: age
    would silently become a categorical covariate with one level per value.
    """
    if arr.dtype.kind not in "OUS" or arr.shape[1] == 0:
        return
    numeric = [j for j in range(arr.shape[1]) if _looks_numeric(arr[:, j])]
    if numeric:
        raise ValueError(
            f"covariates= is an array of dtype {arr.dtype} (text or mixed types) "
            f"whose column(s) {numeric} hold numbers: it is ambiguous whether "
            "they are numeric (age) or categories (scanner codes). Declare the "
            "categorical columns with categorical=[...] (their positions, e.g. "
            "categorical=[1], or names covariate0, covariate1, ...): the other "
            "columns are then read as numbers. Or pass the covariates as a "
            "pandas DataFrame with a numeric dtype for numeric columns and a "
            "string or category dtype for categorical ones."
        )


def _declared(categorical, columns):
    """Names of the covariate columns declared in ``categorical=``."""
    names = []
    for item in categorical or []:
        if isinstance(item, numbers.Integral) and not isinstance(item, bool):
            if not -len(columns) <= int(item) < len(columns):
                raise ValueError(
                    f"categorical= position {int(item)} is out of range: there "
                    f"are {len(columns)} covariate column(s) "
                    f"{[str(c) for c in columns]}."
                )
            names.append(columns[int(item)])
        elif item in columns:
            names.append(item)
        else:
            raise SubjectTableError(
                "declared in categorical= but not a covariate (covariates: "
                f"{[str(c) for c in columns]})",
                column=item,
            )
    return names


def _array_covariates(arr, index, categorical):
    """Covariate array as a DataFrame: declared columns categorical, others numbers."""
    columns = [f"covariate{j}" for j in range(arr.shape[1])]
    declared = _declared(categorical, columns)
    if not declared:
        _refuse_ambiguous_array(arr)
        return pd.DataFrame(arr, index=index, columns=columns)
    data = {}
    for j, name in enumerate(columns):
        values = arr[:, j]
        if name in declared:
            data[name] = pd.Categorical(values)
            continue
        try:
            data[name] = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            at = next(i for i, v in enumerate(values) if not _looks_numeric([v]))
            raise SubjectTableError(
                f"covariate holds {plain(values[at])!r}, which is not a number, "
                "and is not declared in categorical=: add its position or name "
                "to categorical= (the undeclared columns are read as numbers)",
                row=index[at],
                column=name,
            ) from None
    return pd.DataFrame(data, index=index)


def _read_covariates(X, covariates, names, n, index, from_table, categorical=None):
    """Covariates of each row, from ``covariates=`` or the columns ``names``.

    Columns named (or at the positions) in ``categorical`` are categorical
    whatever their dtype; in a text or mixed covariate array, the others are
    read as numbers.
    """
    if covariates is not None:
        covariates = align_rows(
            covariates, _rows_of(X), what="covariates=", reference="X"
        )
        if isinstance(covariates, pd.DataFrame):
            cov = covariates.set_axis(index, axis=0)
        elif isinstance(covariates, pd.Series):
            cov = covariates.to_frame().set_axis(index, axis=0)
        else:
            arr = np.asarray(covariates)
            arr = arr.reshape(n, -1) if arr.ndim < 2 else arr
            if arr.shape[0] != n:
                raise ValueError("covariates must have one row per row of X.")
            return _array_covariates(arr, index, categorical)
        if cov.shape[0] != n:
            raise ValueError("covariates must have one row per row of X.")
        return _as_categorical(cov, categorical)
    names = list(names or [])
    for name in names:
        if not isinstance(X, pd.DataFrame) or name not in X.columns:
            raise SubjectTableError("covariate column not found in X", column=name)
    from_table.extend(names)
    # column by column: X[names] takes from every block of a wide table
    cov = pd.DataFrame({name: X[name] for name in names}, index=index)
    return _as_categorical(cov, categorical)


def _as_categorical(cov, categorical):
    """The declared columns of a covariate DataFrame as categories."""
    declared = _declared(categorical, list(cov.columns))
    if not declared:
        return cov
    cov = cov.copy()
    for name in declared:
        cov[name] = pd.Categorical(cov[name].to_numpy())
    return cov


def _select_features(table, features, features_seen, from_table, *, reset):
    """Names of the columns to harmonize and their positions in ``table``."""
    if features is not None:
        feats = list(features)
        positions = _positions(table, feats)
        bad = [
            k for k in np.flatnonzero(_column_kinds(table, positions) != "numeric")
        ]
        if bad:
            name = feats[bad[0]]
            raise SubjectTableError(
                f"feature column has non-numeric dtype {table[name].dtype}",
                column=name,
            )
    elif reset:
        numeric = design.is_numeric_dtypes(table.dtypes)
        candidate = ~table.columns.isin(from_table)
        # an object column of numbers is refused by name (the one rule), never
        # silently left out of the features
        dtypes = table.dtypes
        for k in np.flatnonzero(candidate & ~numeric):
            if dtypes.iloc[k] == np.dtype("O"):
                is_numeric_column(table.iloc[:, k], name=table.columns[k])
        positions = np.flatnonzero(numeric & candidate)
        # tolist, not list(): iterating pandas 3's Arrow-backed column labels
        # one by one is slow for wide tables
        feats = table.columns[positions].tolist()
    else:
        feats = list(features_seen)
        positions = _positions(table, feats)
    if not feats:
        raise ValueError(
            "ComBatHarmonizer found no numeric feature column to harmonize."
        )
    return feats, positions


def _positions(table, feats):
    positions = table.columns.get_indexer(feats)
    if (positions < 0).any():
        missing = feats[int(np.flatnonzero(positions < 0)[0])]
        raise SubjectTableError("feature column not found in X", column=missing)
    return positions


def _column_kinds(table, positions):
    dtypes = table.dtypes.iloc[positions]
    return np.where(design.is_numeric_dtypes(dtypes), "numeric", "other")


def read_table(estimator, X, sites, covariates, spec, y=None):
    """Split ``X`` into features, sites, covariates and pass-through columns.

    Parameters
    ----------
    estimator : ComBatHarmonizer
        Passed to :func:`~sklearn.utils.validation.validate_data`, which
        records (``spec.reset=True``) or checks the input columns.
    X : pandas.DataFrame or array-like
        The subject table or a numeric array.
    sites, covariates : array-like, DataFrame or None
        Routed metadata; override ``spec.site`` and ``spec.covariate_columns``.
    spec : TableSpec
        The columns to read (the estimator's parameters).
    y : array-like or None, default=None
        The training target, kept in the batch (``Batch.y``).

    Returns
    -------
    Batch
        The table as a DataFrame, the feature names and positions, the site
        of each row, the covariates, the site/covariate/extra columns read
        from ``X``, the feature getter and the extra columns' values.
    """
    reset, layout = spec.reset, spec.layout
    same = (
        not reset
        and layout is not None
        and isinstance(X, pd.DataFrame)
        and X.columns.equals(layout[0])
    )
    if same:
        table = X
    elif isinstance(X, pd.DataFrame):
        validate_data(estimator, _object_labels(X), skip_check_array=True, reset=reset)
        if reset:
            check_fit_rows(X, estimator=estimator)
        table = X
    else:
        arr = validate_data(
            estimator,
            X,
            reset=reset,
            dtype=np.float64,
            ensure_all_finite="allow-nan",
        )
        table = pd.DataFrame(arr, columns=[f"x{j}" for j in range(arr.shape[1])])
    index = table.index
    n = table.shape[0]
    from_table = []
    site_values = _read_sites(X, sites, spec.site, n, index, from_table)
    cov = _read_covariates(
        X, covariates, spec.covariate_columns, n, index, from_table, spec.categorical
    )
    extra = _read_extra(table, spec.extra_columns, from_table)
    if same:
        feats, positions = spec.features_seen, layout[1]  # ndarray: no list of names
    else:
        feats, positions = _select_features(
            table, spec.features, spec.features_seen, from_table, reset=reset
        )
    get = feature_getter(table, feats, positions)
    return Batch(
        table, feats, positions, site_values, cov, from_table, get, extra=extra, y=y
    )


def _object_labels(X):
    """``X`` with its column labels as an object Index (a shallow copy).

    scikit-learn reads the feature names label by label, which is slow for
    pandas 3's Arrow-backed string labels of a wide table and fast for object
    labels. The data are not copied and the names are the same.
    """
    if X.columns.dtype == object:
        return X
    view = X.copy(deep=False)
    view.columns = pd.Index(X.columns.to_numpy(dtype=object), dtype=object)
    return view


def _read_extra(table, names, from_table):
    """Values of the extra columns ``names`` of ``table``, by name."""
    extra = {}
    for name in names:
        if name not in table.columns:
            raise SubjectTableError("column not found in X", column=name)
        if name not in from_table:
            from_table.append(name)
        extra[name] = table[name].to_numpy()
    return extra


#: Largest magnitude accepted in a feature cell: beyond it the sums of squares
#: of ComBat overflow float64 (inf is refused for the same reason).
MAX_ABS_VALUE = 1e150


def _block_view(table, positions):
    """A read-only ``(n_samples, n_features)`` view of the features, or None.

    When the features are a run of columns stored in one float64 pandas block
    (a table built from a feature matrix, with site and covariates added), the
    block's memory is read directly instead of copying it piece by piece
    (``iloc`` copies as soon as the frame holds several blocks). Relies on
    pandas' block manager; any surprise falls back to ``iloc``.
    """
    if positions.size < 2 or not (np.diff(positions) == 1).all():
        return None
    first, last = int(positions[0]), int(positions[-1])
    try:
        mgr = table._mgr
        blkno = mgr.blknos[first]
        if mgr.blknos[last] != blkno:
            return None
        block = mgr.blocks[blkno]
        values = block.values
        locs = block.mgr_locs.as_array
        start = int(mgr.blklocs[first])
        if not (
            isinstance(values, np.ndarray)
            and values.dtype == np.float64
            and values.ndim == 2
            and values.shape[1] == table.shape[0]
            and start + positions.size <= values.shape[0]
            and (locs[start : start + positions.size] == positions).all()
        ):
            return None
        view = values[start : start + positions.size].T
    except (AttributeError, IndexError, TypeError, ValueError):
        return None
    view = view.view()
    view.flags.writeable = False
    return view


def feature_getter(table, feats, positions=None):
    """Return ``get(a, b)``: features ``a`` to ``b`` of every row as float64.

    Every block read is checked for infinite or overflowing cells
    (``|x| > MAX_ABS_VALUE``): an error names the first such row and column.
    """
    if positions is None:
        positions = table.columns.get_indexer(feats)
    if table.shape[1] == len(feats) and (table.dtypes == np.float64).all():
        arr = table.to_numpy()
        raw = lambda a, b: arr[:, a:b]  # noqa: E731
    elif (view := _block_view(table, positions)) is not None:
        raw = lambda a, b: view[:, a:b]  # noqa: E731
    elif positions.size > 1 and (np.diff(positions) == 1).all():
        first = int(positions[0])
        raw = lambda a, b: table.iloc[:, first + a : first + b].to_numpy(  # noqa: E731
            dtype=np.float64
        )
    else:
        raw = lambda a, b: table.iloc[:, positions[a:b]].to_numpy(  # noqa: E731
            dtype=np.float64
        )

    def get(a, b):
        block = raw(a, b)
        # two reductions that skip NaN and allocate nothing of the block's size
        if block.size and (
            np.fmax.reduce(block, axis=None) > MAX_ABS_VALUE
            or np.fmin.reduce(block, axis=None) < -MAX_ABS_VALUE
        ):
            with np.errstate(invalid="ignore"):
                bad = np.abs(block) > MAX_ABS_VALUE
            i, j = np.argwhere(bad)[0]
            value = float(block[i, j])
            raise SubjectTableError(
                f"feature value {value!r} is infinite or too large for ComBat "
                f"(|x| > {MAX_ABS_VALUE:g}): its sums of squares overflow. "
                "Replace it by NaN (left out of every estimate and kept NaN) "
                "or rescale the feature",
                row=table.index[int(i)],
                column=feats[a + int(j)],
            )
        return block

    get.unchecked = raw  # for readers that check the bounds themselves
    get.limit = MAX_ABS_VALUE
    return get


def rows_getter(get, rows):
    """Restrict a getter of :func:`feature_getter` to ``rows``."""
    return lambda a, b: get(a, b)[rows]


def check_feature_columns(table, feats, y, from_table, *, features, get=None):
    """Warn on binary auto-features (a label or a binary covariate?).

    Only when site or covariates were read from the table (``from_table``)
    and ``features`` (the parameter) is None. Vectorized over blocks of
    columns: the first rows rule out almost every column, the others are
    checked in full. A feature that is the target ``y`` in disguise is refused
    before, with every column handed on
    (:func:`~sklearn_medprep.table.check_target_proxies`); ``y`` is not read
    here.
    """
    if not from_table or features is not None:
        return
    n = table.shape[0]
    if get is None:
        get = feature_getter(table, feats)
    get = getattr(get, "unchecked", get)  # bounds are checked by the fit itself
    head = min(n, 50)
    binary = []
    for start, stop in column_blocks(n, len(feats)):
        block = get(start, stop)
        top = np.sort(block[:head], axis=0)  # NaN sorted last
        steps = (np.diff(top, axis=0) != 0) & ~np.isnan(top[1:])
        distinct = 1 + steps.sum(axis=0)
        for j in np.flatnonzero(distinct <= 2):
            values = block[:, j]
            if np.unique(values[~np.isnan(values)]).size <= 2:
                binary.append(feats[start + int(j)])
    if binary:
        warnings.warn(
            f"ComBatHarmonizer harmonizes every numeric column by default, "
            f"including {binary}, which take at most two values: a binary "
            "covariate belongs in covariates=, a label must be dropped from X "
            "(a column equal to the target is refused); to harmonize them as "
            "features, list the features to harmonize in features=",
            MedprepWarning,
            # check_feature_columns < fit < _fit_context wrapper < caller
            stacklevel=4,
        )
