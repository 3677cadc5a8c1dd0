"""Apply a fitted ComBat model to rows: the per-site affine map, fast.

``out = a x + e - (a - 1) m`` per feature, with ``a = 1 / sqrt(delta*)`` and
``e`` of the row's site (:func:`~._core.site_tables`) and ``m`` the
covariate effects of the row. The data are read in their own layout (row
blocks of a row-major array, column blocks of a DataFrame's column-major
block), in blocks small enough for the cache, into buffers allocated once.
"""

from typing import NamedTuple

import numpy as np

from ._blocks import _unchecked, blas_one_thread, block_layout
from ._core import ComBatModel, site_tables

__all__ = ["BatchTables", "apply_combat", "batch_tables", "output_layout"]

_APPLY_CELLS = 1 << 16  # cells per column block of apply_combat (512 KB: in cache)
_ROW_CELLS = 1 << 18  # cells per row block (2 MB)


def apply_combat(get, out, sites, covariate_design, params, *, ref_level=None):
    """Harmonize rows of training sites (and estimated new sites) into ``out``.

    Parameters
    ----------
    get : callable
        Column-block getter of the data (see
        :func:`~._core.fit_combat`).
    out : ndarray of shape (n_samples, n_features)
        Written in place; fastest in the data's own layout
        (:func:`output_layout`).
    sites : BatchSites
        Site of each row: training sites, estimated new sites
        (``sites.new_sites``), rows left unchanged (the others).
    covariate_design : ndarray
        Covariate columns of the design.
    params : ComBatModel or dict
        The fitted model, or a dict with ``coef_cov``, ``grand_mean``,
        ``var_pooled``, ``gamma_star``, ``delta_star`` and ``ok``.
    ref_level : int or None
        Rows of the reference site are returned unchanged (read from the
        model when it is a :class:`ComBatModel`).
    """
    scale, shift, finite, idx = batch_tables(params, sites, ref_level=ref_level)
    coef_cov = np.ascontiguousarray(params["coef_cov"])
    if block_layout(out) == "C":
        with blas_one_thread(out.size):
            _apply_by_rows(get, out, idx, covariate_design, scale, shift, coef_cov)
        return out
    with blas_one_thread(out.size):
        if finite:
            _apply_by_columns(get, out, idx, covariate_design, scale, shift, coef_cov)
            return out
        if isinstance(params, ComBatModel) and not sites.new_sites:
            scale_f, shift_f, coef_f = params.feature_tables
        else:
            scale_f, shift_f, coef_f = (
                np.ascontiguousarray(t.T) for t in (scale, shift, coef_cov)
            )
        _apply_by_columns_take(
            get, out, idx, covariate_design, scale_f, shift_f, coef_f
        )
    return out


class BatchTables(NamedTuple):
    """The affine tables of a batch (:func:`batch_tables`).

    ``scale``, ``shift`` (``(n_tables, n_features)``), ``finite`` (whether
    every entry is finite) and ``rows`` (the table row of each batch row).
    """

    scale: np.ndarray
    shift: np.ndarray
    finite: bool
    rows: np.ndarray


def batch_tables(params, sites, *, ref_level=None):
    """Per-site affine tables of a batch and each row's entry in them.

    Returns a :class:`BatchTables` ``(scale, shift, finite, rows)``: the
    training sites' tables of :func:`~._core.site_tables`, their
    identity row (rows passed through), then one row per estimated new site
    of ``sites``; whether they are all finite; and the row of the tables of
    each batch row.
    """
    if isinstance(params, ComBatModel):
        scale, shift = params.tables
        finite = params.finite_tables
    else:
        scale, shift = site_tables(params, ref_level)
        finite = bool(np.isfinite(scale).all() and np.isfinite(shift).all())
    n_sites = scale.shape[0] - 1  # the last row is the identity
    if sites.new_sites:
        extra = site_tables(
            {
                "gamma_star": np.vstack([site.gamma_star for site in sites.new_sites]),
                "delta_star": np.vstack([site.delta_star for site in sites.new_sites]),
                "grand_mean": params["grand_mean"],
                "var_pooled": params["var_pooled"],
                "ok": params["ok"],
            }
        )
        scale = np.vstack([scale, extra[0][:-1]])
        shift = np.vstack([shift, extra[1][:-1]])
        finite = finite and bool(np.isfinite(extra).all())
    return BatchTables(scale, shift, finite, sites.table_rows(n_sites))


def _apply_by_rows(get, out, idx, covariate_design, scale, shift, coef_cov):
    """:func:`apply_combat` for row-major data: blocks of whole rows.

    ``scale``/``shift`` are ``(n_tables, n_features)``: a row's entries are
    one contiguous row of the table.
    """
    n_samples, n_features = out.shape
    raw, limit = _unchecked(get)
    data = raw(0, n_features)
    height = max(1, _ROW_CELLS // max(n_features, 1))
    a_buf = np.empty((min(height, n_samples), n_features))
    mod_buf = np.empty_like(a_buf)
    has_cov = covariate_design.shape[1] > 0
    for r0 in range(0, n_samples, height):
        rows = slice(r0, min(r0 + height, n_samples))
        x = data[rows]
        if limit is not None and x.size and (
            np.fmax.reduce(x, axis=None) > limit
            or np.fmin.reduce(x, axis=None) < -limit
        ):
            get(0, n_features)  # raises, naming the row and column
        a = np.take(scale, idx[rows], axis=0, out=a_buf[: x.shape[0]])
        target = out[rows]
        np.multiply(x, a, out=target)
        if has_cov:
            # out = a x + e - (a - 1) mod, mod the covariate effects
            mod = np.matmul(
                covariate_design[rows], coef_cov, out=mod_buf[: x.shape[0]]
            )
            a -= 1.0
            a *= mod
            target -= a
        target += np.take(shift, idx[rows], axis=0, out=a)


def _apply_by_columns(get, out, idx, covariate_design, scale, shift, coef_cov):
    """:func:`apply_combat` for column-major data and finite tables.

    ``scale``/``shift`` are ``(n_tables, n_features)``, ``coef_cov``
    ``(n_cov, n_features)``. ``out = a x + e - (a - 1) m`` in that order of
    operations (so that the outputs are those of earlier versions bit for
    bit), in blocks of columns that stay in cache; ``a`` and ``e`` are
    gathered by a product with the rows' one-hot table indicators (exact,
    ``x * 1 + 0``, several times faster than ``np.take``), computed through
    the row-major transposes so that the product writes contiguous memory
    (BLAS under numpy 1.26 too).
    """
    n_samples, n_features = out.shape
    onehot_t = np.zeros((scale.shape[0], n_samples))
    onehot_t[idx, np.arange(n_samples)] = 1.0
    coef_t = np.ascontiguousarray(coef_cov.T)
    has_cov = covariate_design.shape[1] > 0
    width = max(1, _APPLY_CELLS // max(n_samples, 1))
    a_buf = np.empty((n_samples, min(width, n_features)), order="F")
    mod_buf = np.empty_like(a_buf)
    for start in range(0, n_features, width):
        stop = min(start + width, n_features)
        cols = slice(start, stop)
        x = get(start, stop)
        a = a_buf[:, : stop - start]
        np.matmul(scale[:, cols].T, onehot_t, out=a.T)
        target = out[:, cols]
        np.multiply(x, a, out=target)
        if has_cov:
            mod = np.matmul(
                covariate_design, coef_t[cols].T, out=mod_buf[:, : stop - start]
            )
            a -= 1.0
            a *= mod
            target -= a
        np.matmul(shift[:, cols].T, onehot_t, out=a.T)
        target += a


def _apply_by_columns_take(get, out, idx, covariate_design, scale, shift, coef_t):
    """:func:`_apply_by_columns` for tables with non-finite entries (``np.take``)."""
    n_samples, n_features = out.shape
    has_cov = covariate_design.shape[1] > 0
    width = max(1, _APPLY_CELLS // max(n_samples, 1))
    a_buf = np.empty((n_samples, min(width, n_features)), order="F")
    mod_buf = np.empty_like(a_buf)
    for start in range(0, n_features, width):
        stop = min(start + width, n_features)
        cols = slice(start, stop)
        x = get(start, stop)
        a = a_buf[:, : stop - start]
        a[...] = np.take(scale[cols], idx, axis=1).T
        target = out[:, cols]
        np.multiply(x, a, out=target)
        if has_cov:
            mod = np.matmul(
                covariate_design, coef_t[cols].T, out=mod_buf[:, : stop - start]
            )
            a -= 1.0
            a *= mod
            target -= a
        a[...] = np.take(shift[cols], idx, axis=1).T
        target += a


def output_layout(get, n_features):
    """Layout (``"C"``/``"F"``) of the data read by ``get``, for the output."""
    return block_layout(get(0, min(2, n_features)))
