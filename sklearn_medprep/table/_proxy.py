"""Target proxies: columns of ``X`` that are the target ``y`` in disguise.

A step that hands columns on to the model (ComBat's pass-through, the
radiomics extractor's ``passthrough=``) must not hand on ``y`` itself: the
model would read the answer. :func:`find_target_proxies` finds such columns,
:func:`check_target_proxies` refuses the exact ones and warns on the near ones.

The kinds, each on the rows where both the column and ``y`` are present (at
least 3 rows and at least half of the rows, and at least 10 rows when the
column or ``y`` repeats fewer than 5 values, labels that agree by chance too
often on fewer rows; otherwise the column is not judged):

``"equal"``
    The column equals ``y``.
``"relabel"``
    A one-to-one map between the column's distinct values and ``y``'s
    (labels: text, categories, integer codes, text ``y`` against numeric
    codes), when values repeat: at most half as many distinct values as rows.
``"unit"``
    ``y = a * x + b`` up to float rounding, ``a != 0`` (months and years,
    Fahrenheit and Celsius).
``"monotone"``
    Numeric ``y`` is a strictly monotone function of the column (log, rank,
    a rounded change of unit that keeps every value apart): ties in the
    column are ties in ``y`` and the order is kept or reversed. At least 5
    distinct values, or repeated values: among fewer all-distinct values an
    order is kept by chance too often.
``"near"``
    Not exact, but ``|Pearson r|`` or ``|Spearman rho|`` of the column with
    numeric ``y`` is at least ``near``, on at least 10 rows.

A continuous column unrelated to ``y``, a binary column against a continuous
``y`` and a column that thresholds ``y`` (``x = y > 50``) are not proxies: the
map from ``y`` to them is not one-to-one.

Speed: all numeric columns are screened at once on the first 50 rows where
``y`` is present (a necessary condition for every exact kind: consecutive
rows ordered or tied alike; a loose one for near proxies: Pearson r at least
``near - 0.15`` or Kendall's tau on consecutive pairs at least
``near - 0.35``); only the columns that pass are checked on every row.
"""

import warnings
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..exceptions import TargetProxyError, TargetProxyWarning, plain

__all__ = [
    "TargetProxy",
    "check_target_proxies",
    "find_target_proxies",
]

#: Kinds refused by :func:`check_target_proxies` (``"near"`` only warns).
EXACT_KINDS = ("equal", "relabel", "unit", "monotone")

#: Rows of the vectorized screen.
_FEW = 8  # up to this many numeric columns are read one by one
_HEAD = 50
#: Fewest rows compared for an exact kind / for a near proxy.
_MIN_ROWS = 3
_MIN_ROWS_NEAR = 10
#: Fewest distinct values for a monotone map among all-distinct values.
_MIN_MONOTONE = 5
#: Fewest rows to judge a column or ``y`` repeating fewer than 5 values:
#: two two-valued columns agree on m random rows with probability 2 / 2**m.
_MIN_ROWS_FEW = 10
#: Relative tolerance of the affine fit ("unit"): float rounding.
_UNIT_RTOL = 1e-9
#: The near screen on the head accepts correlations this much below ``near``.
_NEAR_SLACK = 0.15
#: ... and a share of concordant minus discordant consecutive pairs this much
#: below ``near`` (bivariate normal: tau = 0.91 at r = 0.99; random: 0 +- 0.14).
_TAU_SLACK = 0.35


class TargetProxy(NamedTuple):
    """A column found to be the target in disguise.

    Attributes
    ----------
    column : hashable
        The column of ``X`` (its position when ``X`` is an array).
    kind : {"equal", "relabel", "unit", "monotone", "near"}
        How the column and ``y`` are related (see the module's notes).
    detail : str
        The evidence, in words (e.g. ``"equals y up to a change of unit:
        y = 12 * age + 0"``).
    statistic : float
        The association: ``1.0`` or ``-1.0`` for the exact kinds (the sign of
        the order for numeric kinds; Cramér's V = 1 for a relabelling), the
        larger-in-magnitude of Pearson's r and Spearman's rho for ``"near"``.
    """

    column: object
    kind: str
    detail: str
    statistic: float


def _fmt(value):
    return f"{float(value):.6g}"


def _as_frame(X):
    if isinstance(X, pd.DataFrame):
        return X
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise ValueError(f"X must be a DataFrame or a 2-D array, got shape {arr.shape}")
    return pd.DataFrame(arr)


def _outputs(y, n, index):
    """``[(label, values)]``: one 1-D target per output of ``y``."""
    if isinstance(y, np.ndarray) and y.dtype.names is not None:
        # a structured target (scikit-survival's event and time): each field
        outputs = [(f"y[{name!r}]", np.asarray(y[name]).ravel())
                   for name in y.dtype.names]
    elif isinstance(y, pd.DataFrame):
        outputs = [(f"y[{plain(c)!r}]", _series_values(y[c])) for c in y.columns]
    elif isinstance(y, pd.Series):
        outputs = [("y", _series_values(y))]
    else:
        arr = np.asarray(y)
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim == 1:
            outputs = [("y", arr)]
        elif arr.ndim == 2:
            outputs = [(f"y[:, {j}]", arr[:, j]) for j in range(arr.shape[1])]
        else:
            raise ValueError(f"y must be 1-D or 2-D, got shape {arr.shape}")
    for _, values in outputs:
        if values.shape[0] != n:
            raise ValueError(
                f"y has {values.shape[0]} rows where X has {n}: they must be "
                "aligned row by row"
            )
    return outputs


def _series_values(series):
    """A Series' values; a numeric one (nullable dtypes too) as float64 with NaN."""
    if isinstance(series.dtype, np.dtype) and series.dtype.kind in "biuf":
        return series.to_numpy().astype(np.float64)  # no NA to fill: cheaper
    if _is_numeric_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    return series.to_numpy()


def _numeric(values):
    """``values`` as float64 when its dtype is numeric (bool included), else None."""
    values = np.asarray(values)
    if values.dtype.kind in "biuf":
        return values.astype(np.float64, copy=False)
    return None


def _is_numeric_dtype(dtype):
    return isinstance(dtype, np.dtype) and dtype.kind in "biuf" or (
        pd.api.types.is_numeric_dtype(dtype)
        and not isinstance(dtype, pd.CategoricalDtype)
    )


def _as_slice(positions):
    """``positions`` as a slice when they are a run (cheaper to take)."""
    if positions.size and positions[-1] - positions[0] == positions.size - 1:
        return slice(int(positions[0]), int(positions[-1]) + 1)
    return positions


def _numeric_head(X, positions, head, unique):
    """The ``head`` rows of the numeric columns at ``positions`` (float64, NaN)."""
    if unique and positions.size <= _FEW:  # a few columns: by label, no iloc
        return np.column_stack([
            _series_values(X[X.columns[p]])[head] for p in positions
        ])
    # only the head rows of a wide table (50,000 columns: never the whole)
    return X.iloc[_as_slice(head), _as_slice(positions)].to_numpy(
        dtype=np.float64, na_value=np.nan
    )


def _corr_rows(T, yh, missing):
    """Pearson r of each row of ``T`` with ``yh`` (on the cells ``T`` holds).

    ``T`` has one row per column of ``X``; ``missing`` says whether it holds
    NaN (then each row is compared on its own present cells).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        if not missing:
            Tc = T - T.mean(axis=1, keepdims=True)
            yc = yh - yh.mean()
            r = (Tc @ yc) / np.sqrt(np.einsum("ij,ij->i", Tc, Tc) * (yc @ yc))
        else:
            M = ~np.isnan(T)
            cnt = M.sum(axis=1)
            Tz = np.where(M, T, 0.0)
            mx = Tz.sum(axis=1) / cnt
            my = (M @ yh) / cnt
            Tc = np.where(M, T - mx[:, None], 0.0)
            Yc = np.where(M, yh[None, :] - my[:, None], 0.0)
            r = np.einsum("ij,ij->i", Tc, Yc) / np.sqrt(
                np.einsum("ij,ij->i", Tc, Tc) * np.einsum("ij,ij->i", Yc, Yc)
            )
    return np.nan_to_num(r, nan=0.0)


def _screen(T, yh, *, y_numeric, relabel_possible, near):
    """Columns that may be proxies of ``yh`` (a necessary test on the head rows).

    ``T`` holds the head rows of the numeric columns, one row per column;
    ``yh`` holds ``y`` on the same rows, never NaN (text ``y`` as codes).
    Without sorting: each pair of consecutive rows must order (or tie) ``x``
    as a strictly monotone map orders ``y``, or tie ``x`` exactly where ``y``
    ties (a relabelling); a near proxy must have a high Pearson r or a high
    share of concordant pairs there.
    """
    with np.errstate(invalid="ignore"):
        sx = np.sign(np.diff(T, axis=1))  # NaN where a row is missing
    sy = np.sign(np.diff(yh))
    missing = bool(np.isnan(T).any())
    if missing:
        valid = ~np.isnan(sx)
        n_pairs = valid.sum(axis=1)
        cand = n_pairs < _MIN_ROWS  # too few pairs to screen: check in full

        def every(ok):
            return np.all(~valid | ok, axis=1)

        with np.errstate(invalid="ignore", divide="ignore"):
            tau = np.where(valid, sx * sy, 0.0).sum(axis=1) / n_pairs
    else:  # the common case: fewer passes over the block
        cand = np.zeros(T.shape[0], dtype=bool)

        def every(ok):
            return ok.all(axis=1)

        tau = (sx @ sy) / max(sy.size, 1)
    if relabel_possible:
        # ties in x are ties in y and the other way round
        cand |= every((sx == 0) == (sy == 0))
    if y_numeric:
        cand |= every(sx == sy) | every(sx == -sy)  # order kept or reversed
        if near is not None:
            cand |= np.abs(_corr_rows(T, yh, missing)) >= near - _NEAR_SLACK
            # Spearman's rho >= near implies most pairs concordant: share of
            # concordant minus discordant pairs (Kendall's tau on the pairs)
            cand |= np.abs(np.nan_to_num(tau)) >= near - _TAU_SLACK
    return np.flatnonzero(cand)


def _check_column(name, x, x_numeric, y, y_numeric, y_label, near, n):
    """The proxy record of one column, or None (every row compared)."""
    present = ~pd.isna(x) & ~pd.isna(y)
    m = int(present.sum())
    if m < _MIN_ROWS or 2 * m < n:
        return None
    xc, yc = x[present], y[present]
    ky, uy = pd.factorize(yc)
    if uy.size < 2:
        return None  # a constant target: nothing can be told
    try:
        kx, ux = pd.factorize(xc)
    except TypeError:
        return None  # cells that are no values (images, lists): no label
    if not x_numeric and not all(
        isinstance(v, (str, bytes, bool, int, float, np.generic)) for v in ux
    ):
        return None  # objects (images, paths as Path objects): no label
    labels = min(ux.size, uy.size) < _MIN_MONOTONE and min(ux.size, uy.size) < m
    if labels and m < _MIN_ROWS_FEW:
        return None  # few repeated values on few rows: agree by chance too often
    both = x_numeric and y_numeric
    rows = f"on the {m} rows where both are present"
    if both:
        equal = np.array_equal(xc, yc)
    else:
        xo, yo = np.asarray(xc, dtype=object), np.asarray(yc, dtype=object)
        equal = bool(np.all(xo == yo))
    if equal:
        return TargetProxy(name, "equal", f"equals {y_label} {rows}", 1.0)
    pairs = np.unique(kx.astype(np.int64) * uy.size + ky).size
    one_to_one = pairs == ux.size == uy.size
    repeats = 2 * ux.size <= m
    if one_to_one and both:
        mapped = np.empty(ux.size)
        mapped[kx] = yc
        xv = np.asarray(ux, dtype=np.float64)
        order = np.argsort(xv)
        xv, yv = xv[order], mapped[order]
        steps = np.diff(yv)
        sign = 1.0 if (steps > 0).all() else -1.0 if (steps < 0).all() else 0.0
        if sign:
            a, b = _affine(xv, yv)
            if a is not None:
                return TargetProxy(
                    name,
                    "unit",
                    f"equals {y_label} up to a change of unit: "
                    f"{y_label} = {_fmt(a)} * {plain(name)} "
                    f"{'-' if b < 0 else '+'} {_fmt(abs(b))} {rows}",
                    sign,
                )
            if ux.size >= _MIN_MONOTONE or repeats:
                way = "increasing" if sign > 0 else "decreasing"
                return TargetProxy(
                    name,
                    "monotone",
                    f"is a strictly {way} function of {y_label} (a one-to-one, "
                    f"order-{'keeping' if sign > 0 else 'reversing'} map between "
                    f"its {ux.size} values and {y_label}'s) {rows}",
                    sign,
                )
    if one_to_one and repeats:
        pairs_shown = ", ".join(
            f"{plain(u)!r} -> {plain(uy[ky[np.flatnonzero(kx == i)[0]]])!r}"
            for i, u in enumerate(ux[:4])
        )
        more = ", ..." if ux.size > 4 else ""
        return TargetProxy(
            name,
            "relabel",
            f"is {y_label} relabelled: a one-to-one map between its {ux.size} "
            f"values and {y_label}'s ({pairs_shown}{more}) {rows}",
            1.0,
        )
    if both and near is not None and m >= _MIN_ROWS_NEAR:
        xf, yf = np.asarray(xc, dtype=np.float64), np.asarray(yc, dtype=np.float64)
        if np.ptp(xf) == 0:
            return None
        r = float(np.corrcoef(xf, yf)[0, 1])
        rho = float(
            np.corrcoef(
                pd.Series(xf).rank().to_numpy(), pd.Series(yf).rank().to_numpy()
            )[0, 1]
        )
        best = r if abs(r) >= abs(rho) else rho
        if abs(best) >= near:
            return TargetProxy(
                name,
                "near",
                f"is nearly {y_label}: Pearson r = {r:.4f}, Spearman rho = "
                f"{rho:.4f} {rows}",
                best,
            )
    return None


def _affine(xv, yv):
    """``(a, b)`` with ``yv = a * xv + b`` up to rounding, else ``(None, None)``."""
    xm, ym = xv.mean(), yv.mean()
    xd, yd = xv - xm, yv - ym
    a = float((xd * yd).sum() / (xd * xd).sum())
    if a == 0 or not np.isfinite(a):
        return None, None
    b = float(ym - a * xm)
    scale = max(np.abs(yv).max(), np.abs(a * xv).max(), np.abs(b))
    if np.abs(yv - (a * xv + b)).max() <= _UNIT_RTOL * scale:
        # an intercept within rounding of 0 is 0 (months and years)
        return a, (0.0 if abs(b) <= _UNIT_RTOL * scale else b)
    return None, None


def find_target_proxies(X, y, *, columns=None, near=0.99):
    """Find the columns of ``X`` that equal ``y`` up to relabelling, unit or order.

    Parameters
    ----------
    X : pandas.DataFrame or array-like of shape (n_samples, n_columns)
        The table whose columns would be handed on to a model. The columns of
        an array are named by their position.
    y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        The target, row-aligned with ``X``: numbers or class labels (text).
        Each output of a 2-D ``y`` is checked on its own, and so is each field
        of a structured array (scikit-survival's event indicator and time).
    columns : list of hashable, default=None
        Scan only these columns (all when None).
    near : float in (0, 1] or None, default=0.99
        A column that is no exact proxy but whose ``|Pearson r|`` or
        ``|Spearman rho|`` with numeric ``y`` is at least ``near`` is reported
        as ``"near"``; None reports no near proxy.

    Returns
    -------
    list of TargetProxy
        One record per column and output of ``y`` found, in column order;
        ``kind`` is one of ``"equal"``, ``"relabel"``, ``"unit"``,
        ``"monotone"``, ``"near"`` (see :mod:`sklearn_medprep.table._proxy`).

    See Also
    --------
    check_target_proxies : Refuse the exact proxies, warn on the near ones.

    Notes
    -----
    Rows where the column or ``y`` is missing are left out; a column with
    fewer than 3 rows shared with ``y``, or fewer than half the rows, is not
    judged. All numeric columns are screened at once on the first 50 rows;
    only candidates are compared on every row.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from sklearn_medprep.table import find_target_proxies
    >>> rng = np.random.default_rng(0)
    >>> age = rng.uniform(20, 80, 40)
    >>> X = pd.DataFrame({"thickness": rng.normal(2.5, 0.1, 40),
    ...                   "age_months": 12 * age})
    >>> [(p.column, p.kind) for p in find_target_proxies(X, age)]
    [('age_months', 'unit')]
    >>> print(find_target_proxies(X, age)[0].detail[:59])
    equals y up to a change of unit: y = 0.0833333 * age_months
    """
    if near is not None and not 0 < near <= 1:
        raise ValueError(f"near must be in (0, 1] or None, got {near!r}")
    X = _as_frame(X)
    n = X.shape[0]
    outputs = _outputs(y, n, X.index)
    if columns is None:
        positions = np.arange(X.shape[1])
    else:
        columns = list(columns)
        positions = X.columns.get_indexer(columns)
        if (positions < 0).any():
            missing = columns[int(np.flatnonzero(positions < 0)[0])]
            raise KeyError(f"column {plain(missing)!r} is not in X")
    if positions.size == 0 or n == 0:
        return []
    dtypes = X.dtypes.to_numpy()[positions]  # no Series take
    # one answer per distinct dtype (50,000 float64 columns: one question)
    answer = {d: _is_numeric_dtype(d) for d in set(dtypes)}
    numeric = np.fromiter((answer[d] for d in dtypes), dtype=bool,
                          count=dtypes.size)
    unique = X.columns.is_unique  # then a column by its label: no iloc
    found = {}
    for y_label, y_values in outputs:
        y_float = _numeric(y_values)
        y_numeric = y_float is not None
        y_use = y_float if y_numeric else np.asarray(y_values, dtype=object)
        present = np.flatnonzero(~pd.isna(y_use))
        codes, uniques = pd.factorize(y_use[present])
        if uniques.size < 2:
            continue
        relabel_possible = 2 * uniques.size <= present.size
        todo = list(positions[~numeric])
        num_pos = positions[numeric]
        if num_pos.size:
            head = present[:_HEAD]
            H = _numeric_head(X, num_pos, head, unique)
            yh = y_float[head] if y_numeric else codes[:_HEAD].astype(np.float64)
            keep = _screen(
                np.ascontiguousarray(H.T),
                yh,
                y_numeric=y_numeric,
                relabel_possible=relabel_possible,
                near=near,
            )
            todo.extend(num_pos[keep])
        for pos in sorted(todo):
            col = X[X.columns[pos]] if unique else X.iloc[:, pos]
            is_num = _is_numeric_dtype(col.dtype)
            x = (
                col.to_numpy(dtype=np.float64, na_value=np.nan)
                if is_num
                else col.to_numpy(dtype=object)
            )
            record = _check_column(
                X.columns[pos], x, is_num, y_use, y_numeric, y_label, near, n
            )
            if record is not None:
                found.setdefault(pos, []).append(record)
    return [r for pos in sorted(found) for r in found[pos]]


def check_target_proxies(X, y, *, columns=None, estimator=None, near=0.99):
    """Refuse a column that is the target in disguise; warn on a near one.

    A step calls this in ``fit`` on the columns it hands on to the model.
    An exact proxy (``"equal"``, ``"relabel"``, ``"unit"``, ``"monotone"``)
    raises; a near proxy warns, since a strong but inexact association can be
    real biology (a feature that tracks age closely), while an exact one is
    the answer itself.

    Parameters
    ----------
    X : pandas.DataFrame or array-like of shape (n_samples, n_columns)
        The table whose columns would be handed on.
    y : array-like of shape (n_samples,) or (n_samples, n_outputs) or None
        The target; None checks nothing.
    columns : list of hashable, default=None
        Check only these columns (all when None).
    estimator : str or None, default=None
        Name of the step, used in the messages.
    near : float in (0, 1] or None, default=0.99
        Threshold of ``|Pearson r|`` or ``|Spearman rho|`` for the warning.

    Returns
    -------
    list of TargetProxy
        The near proxies warned about (empty when none).

    Raises
    ------
    sklearn_medprep.exceptions.TargetProxyError
        An exact proxy; ``column`` names it, the message gives the evidence.

    Warns
    -----
    sklearn_medprep.exceptions.TargetProxyWarning
        For near proxies, naming each column and its correlation.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from sklearn_medprep.exceptions import TargetProxyError
    >>> from sklearn_medprep.table import check_target_proxies
    >>> age = np.linspace(20, 80, 30)
    >>> X = pd.DataFrame({"site": ["a", "b", "c"] * 10, "age": age})
    >>> try:
    ...     check_target_proxies(X, age, estimator="ComBatHarmonizer")
    ... except TargetProxyError as err:
    ...     print(err.column, "|", err.bare_message[:64])
    age | ComBatHarmonizer would hand column 'age' on to the model, but it
    """
    if y is None:
        return []
    found = find_target_proxies(X, y, columns=columns, near=near)
    exact = [p for p in found if p.kind in EXACT_KINDS]
    who = f"{estimator} would hand" if estimator else "A step would hand"
    if exact:
        first = exact[0]
        name = plain(first.column)
        others = [plain(p.column) for p in exact[1:]]
        also = (
            f" Other columns that are the target in disguise: {others} (drop "
            "them too)."
            if others
            else ""
        )
        raise TargetProxyError(
            f"{who} column {name!r} on to the model, but it {first.detail}: "
            f"the model would read the target. Drop {name!r} from X before "
            f"fitting.{also}",
            column=name,
        )
    near_found = [p for p in found if p.kind == "near"]
    if near_found:
        listed = "; ".join(f"{plain(p.column)!r} {p.detail}" for p in near_found)
        warnings.warn(
            f"{who} on to the model column(s) that are nearly the target: "
            f"{listed}. If a column was derived from y (a rounded copy, a "
            "score computed from it), drop it from X: it leaks the target.",
            TargetProxyWarning,
            stacklevel=2,
        )
    return near_found
