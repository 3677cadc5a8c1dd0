"""The protected target of ComBat: a design term in fit, its centre in transform.

ComBat removes from each feature whatever its design does not protect. When the
target (diagnosis, age) differs between sites, as it does in most multi-site
studies, an unprotected ComBat removes the target's effect together with the
site's. Protecting it is legitimate in ``fit``, which receives the training
labels like any supervised step; what would leak is *needing* a row's label to
transform it. So the target enters the design of ``fit`` (estimated on the
training rows only) and ``transform`` fills the target's design columns with
their training centre (their mean over the training rows), for every row:

- location only (``mean_only=True``): the target's term cancels exactly, the
  output does not depend on the centre;
- location and scale: the harmonized value of a row differs from the one its
  own label would give by ``(t - t_bar) * theta * (1 - 1 / sqrt(delta*))``
  (``t``: the row's target design, ``t_bar`` the centre, ``theta`` the target
  coefficients, ``delta*`` the site's scale), i.e. the target's effect is
  scaled by ``1 / sqrt(delta*)`` at that site, like the rest of the biological
  variation around the centre.

Every design built from the target is assembled here (:func:`design_matrix`,
:func:`gam_inputs`), so that a ComBat variant reuses it unchanged.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..exceptions import SubjectTableError, plain
from ..utils._survival import survival_fields
from ._apply import batch_tables
from ._design import is_numeric_dtypes
from ._gam import spline_basis

__all__ = [
    "TargetTerm",
    "fit_target_term",
    "gam_inputs",
    "design_matrix",
    "fit_design",
    "check_target_not_covariate",
    "keep_target_direction",
    "keep_batch_target_direction",
    "target_basis",
]

#: Cells of one block of rows of :func:`keep_target_direction` (16 MB of float64).
_PROJECT_CELLS = 1 << 21

#: Integer targets with at most this many distinct values are classes ("auto").
MAX_INTEGER_CLASSES = 10


@dataclass
class TargetTerm:
    """Fitted description of the protected target term.

    Attributes
    ----------
    kind : {"classes", "linear", "smooth"}
        How the target enters the design.
    levels : ndarray or None
        Class labels (sorted; the first is the baseline, not in the design).
    centre : ndarray of shape (n_columns,)
        Mean of the target's design columns over the training rows: the value
        every row gets at ``transform``.
    n_columns : int
        Number of design columns of the term.
    """

    kind: str
    levels: np.ndarray
    centre: np.ndarray
    n_columns: int


def _first_row(index, mask):
    return index[int(np.flatnonzero(mask)[0])]


def _target_array(y, n, index):
    y_arr = y.to_numpy() if isinstance(y, (pd.Series, pd.DataFrame)) else np.asarray(y)
    if y_arr.ndim == 2 and y_arr.shape[1] == 1:
        y_arr = y_arr[:, 0]
    if y_arr.ndim != 1 or y_arr.shape[0] != n:
        raise ValueError(
            f"protect_target needs one target value per row of X ({n}), got y of "
            f"shape {tuple(int(s) for s in y_arr.shape)}; set protect_target='none' "
            "for a multi-output target."
        )
    missing = pd.isna(y_arr)
    if missing.any():
        raise SubjectTableError(
            "target y is missing (protect_target needs every training label)",
            row=_first_row(index, missing),
        )
    return y_arr


def _is_numeric(y_arr):
    return bool(is_numeric_dtypes([y_arr.dtype])[0])  # the one rule


def resolve_kind(y_arr, protect_target):
    """The term's kind for ``protect_target`` ("auto" decided from ``y``)."""
    if protect_target != "auto":
        if protect_target in ("linear", "smooth") and not _is_numeric(y_arr):
            raise ValueError(
                f"protect_target={protect_target!r} needs a numeric target, got "
                f"dtype {y_arr.dtype}; use 'classes'."
            )
        return protect_target
    if not _is_numeric(y_arr):
        return "classes"  # strings, booleans, categories
    values = np.unique(y_arr)
    integral = np.all(np.mod(values, 1) == 0)
    return "classes" if integral and values.size <= MAX_INTEGER_CLASSES else "linear"


def _raw_columns(y_arr, kind, levels):
    """Columns of the target before any spline basis (one-hot drops level 0)."""
    if kind == "classes":
        return np.column_stack([(y_arr == lv).astype(np.float64) for lv in levels[1:]])
    return y_arr.astype(np.float64)[:, None]


def fit_target_term(y, index, protect_target):
    """Encode the training target; return ``(term, raw columns)``.

    The centre is filled in by :func:`fit_design` once the design (and, for a
    smooth term, its knots) is known.
    """
    y_arr = _target_array(_protected_part(y, protect_target), len(index), index)
    kind = resolve_kind(y_arr, protect_target)
    levels = None
    if kind == "classes":
        levels = np.array(sorted(pd.unique(y_arr), key=str), dtype=object)
        _refuse_continuous_classes(y_arr, levels.size)
        if levels.size < 2:
            only = levels[0].item() if hasattr(levels[0], "item") else levels[0]
            raise ValueError(
                f"protect_target: the training target has a single class "
                f"{only!r}; there is nothing to protect."
            )
    elif np.unique(y_arr).size < 2:
        raise ValueError("protect_target: the training target is constant.")
    raw = _raw_columns(y_arr, kind, levels)
    return TargetTerm(kind, levels, np.empty(0), 0), raw


def _protected_part(y, protect_target):
    """The part of ``y`` the design protects: the event of a survival target.

    A survival target (scikit-survival's structured array of event indicator
    and time) is protected through its event indicator, as two classes. Its
    time is not: a censored row's time is its follow-up, set by when the site
    recruited and stopped following it (a property of the site's study, which
    ComBat is meant to remove), not its survival time, and an event's time has
    no counterpart for censored rows.
    """
    fields = survival_fields(y)
    if fields is None:
        return y
    event, _, event_name, time_name = fields
    if protect_target not in ("auto", "classes"):
        raise ValueError(
            f"protect_target={protect_target!r} with a survival target "
            f"(fields {event_name!r}, {time_name!r}): only the event indicator "
            "is protected, as two classes (protect_target='auto' or "
            "'classes'); its censored time is not a value a design can protect. "
            "Use protect_target='none' to protect nothing."
        )
    if event.size and (event.all() or not event.any()):
        what = "an event" if event.all() else "no event (all censored)"
        raise ValueError(
            f"protect_target: every training row has {what} ({event_name!r} is "
            "constant), so the survival target's event indicator has nothing to "
            "protect; use protect_target='none', or a splitter that stratifies "
            "on the event (stratify_y=True)."
        )
    return event


def _refuse_continuous_classes(y_arr, n_levels):
    """``protect_target="classes"`` with a continuous ``y``: refused with the fix.

    Each class is a design column, so a continuous target (non-integer
    values, or more than :data:`MAX_INTEGER_CLASSES` classes averaging fewer
    than two rows each) makes the design singular.
    """
    if not _is_numeric(y_arr) or y_arr.dtype == bool:
        return
    values = np.unique(y_arr)
    non_integer = not np.all(np.mod(values, 1) == 0)
    too_many = n_levels > MAX_INTEGER_CLASSES and 2 * n_levels > y_arr.shape[0]
    if non_integer or too_many:
        what = "non-integer values" if non_integer else "integer values"
        raise ValueError(
            f"protect_target='classes' but y looks continuous: {n_levels} "
            f"distinct {what} in {y_arr.shape[0]} rows (e.g. "
            f"{plain(values[:3])}). Each class becomes a design column, so "
            "the ComBat design would be singular. Use protect_target='linear' "
            "(or 'smooth', or 'auto') for a continuous target, or bin y into "
            "classes first."
        )


def gam_inputs(linear, spline, term, raw):
    """Linear and smooth inputs of ComBat-GAM with the target term appended."""
    if term is None:
        return linear, spline
    if term.kind == "smooth":
        return linear, np.hstack([spline, raw])
    return np.hstack([linear, raw]), spline


def _pieces(linear, spline, knots, term, raw):
    """Blocks of the design and whether each is the target's."""
    n = linear.shape[0]
    smooth = term is not None and term.kind == "smooth"
    blocks = [(linear, False)]
    if term is not None and not smooth:
        blocks.append((raw if raw is not None else np.tile(term.centre, (n, 1)), True))
    if spline.shape[1]:
        blocks.append((spline_basis(spline, knots[:-1] if smooth else knots), False))
    if smooth:
        if raw is not None:
            blocks.append((spline_basis(raw, knots[-1:]), True))
        else:
            blocks.append((np.tile(term.centre, (n, 1)), True))
    return blocks


def design_matrix(linear, spline, knots, term):
    """Covariate design of ``transform``: the target's columns at their centre.

    The order is ``[linear covariates, (class or linear target), spline bases,
    (smooth target basis)]``, the order of the ComBat-GAM coefficients.
    """
    blocks = _pieces(linear, spline, knots, term, None)
    return np.hstack([b for b, _ in blocks]) if len(blocks) > 1 else linear


def fit_design(linear, spline, knots, term, raw):
    """Covariate design of ``fit`` (the training target itself in its columns).

    Records the term's training centre (mean of its columns) in ``term``.

    Returns
    -------
    design : ndarray of shape (n_samples, n_design)
    target_mask : ndarray of bool of shape (n_design,)
        The target's columns.
    """
    blocks = _pieces(linear, spline, knots, term, raw)
    design = np.hstack([b for b, _ in blocks]) if len(blocks) > 1 else linear
    mask = np.concatenate([np.full(b.shape[1], t) for b, t in blocks])
    if term is not None:
        term.centre = design[:, mask].mean(axis=0)
        term.n_columns = int(mask.sum())
    return design, mask


def _codes(values):
    array = np.asarray(values)
    if array.dtype.kind in "biuf" and not np.isnan(array.astype(np.float64)).any():
        # numbers and booleans as floats, as _key has them (1 == 1.0 == True),
        # without a Python call per value
        return pd.factorize(array.astype(np.float64))[0]
    # distinct values first, then one key per distinct value (not per row)
    codes, uniques = pd.factorize(np.asarray(values, dtype=object))
    first = {}  # key -> code, in order of first appearance (as factorize)
    merged = np.array([first.setdefault(_key(u), len(first)) for u in uniques],
                      dtype=np.intp)
    return merged[codes]


def _key(v):
    # 1 == 1.0 == True: relabelled equal values share a code
    if isinstance(v, (bool, np.bool_)):
        return ("num", float(v))
    if isinstance(v, (int, float, np.integer, np.floating)):
        return ("num", float(v))
    return ("obj", str(v))


def _same_up_to_relabelling(a, b):
    """True when ``a`` and ``b`` are the same partition of the rows, or linear."""
    ca, cb = _codes(a), _codes(b)
    na, nb = ca.max() + 1, cb.max() + 1
    n = len(ca)
    if na == nb and na < n:
        pairs = np.count_nonzero(np.bincount(ca * nb + cb, minlength=na * nb))
        if pairs == na:  # a one-to-one map between the two sets of values
            return True
    try:
        fa = np.asarray(a, dtype=np.float64)
        fb = np.asarray(b, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    if np.array_equal(fa, fb):
        return True
    if not (np.isfinite(fa).all() and np.isfinite(fb).all()):
        return False
    da, db = fa - fa.mean(), fb - fb.mean()
    saa, sbb = da @ da, db @ db
    if saa == 0 or sbb == 0:
        return False
    return abs(da @ db) / np.sqrt(saa * sbb) > 1 - 1e-12  # a change of unit


def check_target_not_covariate(cov, y):
    """Refuse a covariate equal to the target up to relabelling or change of unit.

    ``"neg"``/``"pos"`` against 0/1, booleans, months against years: such a
    column is the label, unknown at transform time for new subjects. Each
    field of a survival target (event indicator, time) is checked on its own.
    """
    fields = survival_fields(y)
    if fields is not None:  # each field on its own (event, time)
        for part in fields[:2]:
            check_target_not_covariate(cov, part)
        return
    y_arr = np.asarray(y)
    if y_arr.ndim == 2 and y_arr.shape[1] == 1:
        y_arr = y_arr[:, 0]
    if y_arr.ndim != 1 or y_arr.shape[0] != cov.shape[0] or cov.shape[0] < 2:
        return
    if pd.isna(y_arr).any():
        return
    for name in cov.columns:
        values = cov[name].to_numpy()
        if pd.isna(values).any():
            continue
        if _same_up_to_relabelling(values, y_arr):
            raise SubjectTableError(
                "covariate equals the target y (up to relabelling): the target is "
                "unknown at transform time for new subjects, so it cannot be a "
                "covariate. Drop it from the covariates: ComBatHarmonizer protects "
                "the target itself in fit (protect_target, default 'auto') without "
                "needing it in transform",
                column=name,
            )



def keep_target_direction(out, covariate_design, model, target_mask, row_scale):
    """Exempt each row's estimated target effect from the scale adjustment.

    With location and scale, the target's design is unknown at ``transform``
    and sits at its training centre, so the row's own target effect would be
    scaled by its site's ``a = 1 / sqrt(delta*)`` like the noise around it.
    Here each row's standardized residual ``u`` (after its site's location)
    is split into its least-squares component along the target's coefficients
    ``B = theta / sd`` (over the harmonized features) and the rest; the scale
    adjustment is kept for the rest only:
    ``z* = P + a (u - P)``, ``P = B^T (B B^T)^+ B u``, i.e.
    ``out += (1 - a) * (c @ theta)`` with ``c = (B B^T)^+ B u``.
    Only the row's own features are read (never its label). NaN cells are
    left out of the row's projection.

    Parameters
    ----------
    out : ndarray of shape (n_samples, n_features)
        Output of the affine ComBat map (``a x + e - (a - 1) m``); changed
        in place.
    covariate_design : ndarray of shape (n_samples, n_design)
        The rows' covariate design, target at its centre.
    model : ComBatModel
    target_mask : ndarray of bool of shape (n_design,)
        The target's columns of the covariate design.
    row_scale : callable
        ``row_scale(rows)`` returns ``a`` of shape ``(len(rows), n_features)``
        (1 for rows and features left unchanged).

    Returns
    -------
    out : ndarray
    """
    ok = np.asarray(model["ok"], dtype=bool)
    coef_cov = model["coef_cov"]
    theta = coef_cov[target_mask][:, ok]  # (k, p_ok)
    if theta.shape[0] == 0 or not ok.any():
        return out
    cols = np.flatnonzero(ok)
    sd = np.sqrt(model["var_pooled"][ok])
    b = theta / sd
    gram_inv = np.linalg.pinv(b @ b.T)
    # blocks of rows: a few (rows x features) temporaries of bounded size
    height = max(1, _PROJECT_CELLS // max(cols.size, 1))
    for start in range(0, out.shape[0], height):
        block = np.arange(start, min(start + height, out.shape[0]))
        a = row_scale(block)[:, ok]
        moved = (a != 1.0).any(axis=1)
        if not moved.any():
            continue
        rows, a = block[moved], a[moved]
        base = model["grand_mean"][ok] + covariate_design[rows] @ coef_cov[:, ok]
        u = (out[np.ix_(rows, cols)] - base) / (sd * a)
        finite = np.isfinite(u)
        full = finite.all(axis=1)
        c = np.empty((rows.size, b.shape[0]))
        c[full] = u[full] @ b.T @ gram_inv
        for i in np.flatnonzero(~full):  # rows with NaN cells: their finite features
            keep = finite[i]
            bi = b[:, keep]
            c[i] = np.linalg.pinv(bi @ bi.T) @ (bi @ u[i, keep])
        # c @ theta: the rows' estimated target effects, in data units
        out[np.ix_(rows, cols)] += (1.0 - a) * (c @ theta)
    return out


def target_basis(model, target_mask, term):
    """The protected target's coefficients over the pooled standard deviations.

    ``(k, n_features)``: the directions in which the target moves a row's
    standardized features (zero where a feature is not harmonized), for
    ``unseen_site="estimate_outside_target"``.

    Raises
    ------
    ValueError
        Without a protected target (``fit`` without ``y``, or
        ``protect_target="none"``): there is no direction to keep.
    """
    if term is None:
        raise ValueError(
            "unseen_site='estimate_outside_target', 'estimate_prior' or "
            "'estimate_prior_cov' keeps the "
            "protected target's direction out of a new site's estimate, but no "
            "target is protected: "
            "fit with y and protect_target other than 'none', or use "
            "unseen_site='estimate'"
        )
    ok = np.asarray(model["ok"], dtype=bool)
    theta = np.asarray(model["coef_cov"])[np.asarray(target_mask, dtype=bool)]
    with np.errstate(invalid="ignore", divide="ignore"):
        basis = theta / np.sqrt(model["var_pooled"])
    return np.where(ok & np.isfinite(basis), basis, 0.0)


def keep_batch_target_direction(out, batch, model, target_mask):
    """:func:`keep_target_direction` for a transform batch (``_adjust``).

    The rows' ``a = 1 / sqrt(delta*)`` are those
    :func:`~._apply.apply_combat` applied
    (:func:`~._apply.batch_tables`).
    """
    scale, _, _, idx = batch_tables(model, batch.sites)
    return keep_target_direction(
        out, batch.design_cov, model, target_mask, lambda rows: scale[idx[rows]]
    )
