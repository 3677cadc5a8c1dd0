"""Vectorized ComBat numerics (Johnson et al. 2007; Fortin et al. 2018).

Pure numpy, float64, no pandas. The data are read in blocks of columns through
a *getter* ``get(start, stop) -> ndarray (n_samples, stop - start)`` so that the
peak memory stays near the size of the input and of the output, whatever the
number of features. Every per-feature quantity (regression coefficients, pooled
variance, per-site mean and variance of the standardized data) is computed within
a block; only the empirical-Bayes step looks across features, and it works on
per-site summary statistics (``n_sites x n_features`` arrays).

The formulas follow neuroCombat / neuroHarmonize line by line (same design
matrix, same pooled variance, same priors, same iterative solution and the same
convergence rule), so that outputs agree to rounding error; NaN cells are left
out of every sum instead of spreading.
"""

from dataclasses import dataclass, field, fields

import numpy as np

from ._blocks import (
    SiteProbe,
    _unchecked,
    blas_one_thread,
    block_layout,
    cache_blocks,
    column_blocks,
)
from ._degenerate import degenerate_messages
from ._design import singular_design_message
from ._eb import EBInput, EBOptions, adjustments

__all__ = [
    "ComBatModel",
    "SiteStatistics",
    "fit_combat",
    "site_statistics",
    "shrink_sites",
    "site_tables",
]

#: Variance of the standardized data within a site (pooled variance = 1) below
#: which a feature is taken as constant within that site, as it is when its raw
#: values are all equal there: its location is removed there, its scale left
#: unchanged (``delta* = 1``).
SITE_VAR_TINY = 1e-10


@dataclass
class ComBatModel:
    """A fitted ComBat model: location/scale parameters, design, priors.

    What :func:`fit_combat` returns and :func:`apply_combat` applies; a
    variant (CovBat, a new-site method) adds to it or overrides a step instead
    of copying the code. Fields can also be read as ``model["name"]``.

    Attributes
    ----------
    coef : ndarray of shape (n_sites + n_cov, n_features)
        Regression coefficients (site columns, then covariate columns).
    n_sites : int
        Number of training sites.
    grand_mean, var_pooled : ndarray of shape (n_features,)
    gamma_hat, delta_hat : ndarray of shape (n_sites, n_features)
        Per-site location/scale of the standardized data, before shrinkage.
    gamma_star, delta_star : ndarray of shape (n_sites, n_features)
        The adjustments applied.
    priors : dict of ndarray of shape (n_sites,)
        ``gamma_bar``, ``t2``, ``a_prior``, ``b_prior``.
    ok : ndarray of bool of shape (n_features,)
        Features harmonized.
    degenerate : ndarray of bool of shape (n_sites, n_features)
        Site/feature pairs without spread (location removed, scale kept).
    ref_level : int or None
        Code of the reference site.
    empty : ndarray of bool of shape (n_sites, n_features) or None
        Site/feature pairs without any finite training value: the feature is
        harmonized at the other sites, the identity at that one.
    """

    coef: np.ndarray
    n_sites: int
    grand_mean: np.ndarray
    var_pooled: np.ndarray
    gamma_hat: np.ndarray
    delta_hat: np.ndarray
    gamma_star: np.ndarray
    delta_star: np.ndarray
    priors: dict
    ok: np.ndarray
    degenerate: np.ndarray
    ref_level: int = None
    empty: np.ndarray = None
    _tables: tuple = field(default=None, repr=False, compare=False)
    _feature_tables: tuple = field(default=None, repr=False, compare=False)
    _finite_tables: bool = field(default=None, repr=False, compare=False)

    def __getitem__(self, key):
        return getattr(self, key)

    def __getstate__(self):
        # the cached tables are recomputed on demand, not pickled
        state = self.__dict__.copy()
        state.update(_tables=None, _feature_tables=None, _finite_tables=None)
        return state

    def degenerate_report(self, names, labels, rows=None):
        """Messages on features left unharmonized and sites without spread.

        Parameters
        ----------
        names : sequence of str
            Feature names.
        labels : sequence
            Site labels.
        rows : sequence of sequence or None
            Row labels of each site (in the order of ``labels``), named in the
            message on site/feature pairs without any finite value.

        Returns
        -------
        list of str
        """
        return degenerate_messages(self, names, labels, rows)

    @property
    def coef_cov(self):
        """Coefficients of the covariate columns (rows after the sites).

        Zero where not estimated (features left unharmonized, whose map is the
        identity), so that applying the model keeps their values.
        """
        cov = self.coef[self.n_sites :]
        return np.where(np.isfinite(cov), cov, 0.0)

    @property
    def tables(self):
        """The per-site affine maps of :func:`site_tables`, computed once."""
        if self._tables is None:
            self._tables = site_tables(self, self.ref_level)
        return self._tables

    @property
    def feature_tables(self):
        """``(scale, shift, coef_cov)``, feature-major for :func:`apply_combat`.

        ``scale`` and ``shift`` are the transposed :attr:`tables`
        (``(n_features, n_sites + 1)``), ``coef_cov`` is ``(n_features,
        n_cov)``; all C-contiguous, computed once.
        """
        if self._feature_tables is None:
            scale, shift = self.tables
            self._feature_tables = tuple(
                np.ascontiguousarray(t.T) for t in (scale, shift, self.coef_cov)
            )
        return self._feature_tables

    @property
    def finite_tables(self):
        """Whether every entry of :attr:`tables` is finite."""
        if self._finite_tables is None:
            scale, shift = self.tables
            self._finite_tables = bool(
                np.isfinite(scale).all() and np.isfinite(shift).all()
            )
        return self._finite_tables


def _site_onehot(codes, n_sites):
    onehot = np.zeros((codes.shape[0], n_sites))
    onehot[np.arange(codes.shape[0]), codes] = 1.0
    return onehot


def _residual_sums(block, bcoef, buf, design, gram_inv=None):
    """Per-site sums of the residuals of ``block`` and of their squares.

    ``bcoef`` (a view of the coefficients of the block's columns) is filled
    first when ``gram_inv`` is given; ``design`` is ``(design, design.T,
    onehot, onehot.T)`` (C-contiguous); ``buf`` is a work buffer in the
    block's layout. Column-major blocks are handled through their
    (row-major) transposes, so that every product writes contiguous memory:
    BLAS is then used throughout (numpy 1.26 falls back to a slow loop for
    some other layouts).
    """
    design, design_t, onehot, onehot_t = design
    if block_layout(block) == "F":
        block_t, resid_t = block.T, buf.T
        if gram_inv is not None:
            bcoef[...] = ((block_t @ design) @ gram_inv.T).T
        np.matmul(bcoef.T, design_t, out=resid_t)
        np.subtract(block_t, resid_t, out=resid_t)
        s1 = (resid_t @ onehot).T
        np.multiply(resid_t, resid_t, out=resid_t)
        return s1, (resid_t @ onehot).T
    if gram_inv is not None:
        bcoef[...] = gram_inv @ (design_t @ block)
    resid = np.matmul(design, bcoef, out=buf)
    np.subtract(block, resid, out=resid)
    s1 = onehot_t @ resid
    np.multiply(resid, resid, out=resid)
    return s1, onehot_t @ resid


def _columns(raw, cols, n_samples):
    """Every row of the columns ``cols`` (sorted) of the getter ``raw``."""
    out = np.empty((n_samples, cols.size))
    blocks = dict(column_blocks(n_samples, int(cols[-1]) + 1))
    width = next(iter(blocks.values()))
    for start in np.unique(cols // width * width).tolist():
        here = (cols >= start) & (cols < blocks[start])
        out[:, here] = raw(start, blocks[start])[:, cols[here] - start]
    return out


def _constant_within_sites(block, rows_by_site):
    """``(n_sites, n_columns)``: the column takes one value (NaN aside) in the site."""
    out = np.empty((len(rows_by_site), block.shape[1]), dtype=bool)
    with np.errstate(invalid="ignore"):
        for i, rows in enumerate(rows_by_site):
            sub = block[rows]
            out[i] = np.fmax.reduce(sub, axis=0) == np.fmin.reduce(sub, axis=0)
    return out


def _site_stats(s, onehot, counts):
    """Per-site NaN-aware mean and ddof=1 variance of ``s`` (n x b)."""
    finite = ~np.isnan(s)
    s0 = np.where(finite, s, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (onehot.T @ s0) / counts
        codes = onehot.argmax(axis=1)
        centred = np.where(finite, s - mean[codes], 0.0)
        var = (onehot.T @ centred**2) / (counts - 1)
    return mean, var


@dataclass
class SiteStatistics:
    """Per-feature regression and per-site standardized location/scale.

    What :func:`site_statistics` estimates from the rows, before empirical
    Bayes: ``coef`` (``(n_design, n_features)``), ``grand_mean`` and
    ``var_pooled`` (``(n_features,)``), the mean, ddof=1 variance and number
    of non-NaN rows of the standardized data per site (``site_mean``,
    ``site_var``, ``counts``, ``(n_sites, n_features)``), ``constant``
    (the feature takes one value within the site), ``n_sites`` and
    ``ref_level``.
    """

    coef: np.ndarray
    grand_mean: np.ndarray
    var_pooled: np.ndarray
    site_mean: np.ndarray
    site_var: np.ndarray
    counts: np.ndarray
    constant: np.ndarray
    n_sites: int
    ref_level: int = None

    @classmethod
    def concat(cls, parts):
        """The statistics of consecutive chunks of features, side by side.

        Every field is per feature (estimated from that feature's column
        only), so the chunks' statistics joined are those of all features.
        """
        first = parts[0]
        per_feature = [f.name for f in fields(cls)][:-2]  # not n_sites, ref_level
        joined = {
            name: np.concatenate([getattr(p, name) for p in parts], axis=-1)
            for name in per_feature
        }
        return cls(**joined, n_sites=first.n_sites, ref_level=first.ref_level)


def fit_combat(
    get,
    n_features,
    site_codes,
    n_sites,
    covariate_design,
    *,
    ref_level=None,
    eb=True,
    parametric=True,
    mean_only=False,
    coef=None,
    design_names=None,
):
    """Fit ComBat location/scale parameters.

    :func:`site_statistics` then :func:`shrink_sites`.

    Parameters
    ----------
    get : callable
        ``get(start, stop)`` returns the float64 data of columns
        ``start:stop`` as an ``(n_samples, stop - start)`` array (NaN allowed).
    n_features : int
        Number of columns.
    site_codes : ndarray of int, shape (n_samples,)
        Site of each row, coded ``0 .. n_sites - 1``.
    n_sites : int
        Number of sites.
    covariate_design : ndarray, shape (n_samples, n_cov)
        Covariate columns of the design (no intercept, no site indicators).
    ref_level : int or None
        Code of the reference site.
    eb, parametric, mean_only : bool
        As in neuroCombat.
    coef : ndarray of shape (n_sites + n_cov, n_features) or None
        Regression coefficients computed elsewhere (ComBat-GAM); ``None``
        computes them by ordinary least squares, row by row NaN-aware.
    design_names : list of str or None
        Names of the design columns (sites, then covariate columns), for the
        error on a singular design.

    Returns
    -------
    model : ComBatModel
        ``coef``, ``grand_mean``, ``var_pooled``, ``gamma_hat``, ``delta_hat``,
        ``gamma_star``, ``delta_star``, ``priors``, ``ok`` (features that
        could be harmonized) and ``degenerate`` (``(n_sites, n_features)``:
        the feature has no spread within the site, see :data:`SITE_VAR_TINY`;
        its location is still removed there, its scale left unchanged).
    """
    stats = site_statistics(
        get,
        n_features,
        site_codes,
        n_sites,
        covariate_design,
        ref_level=ref_level,
        coef=coef,
        design_names=design_names,
    )
    return shrink_sites(stats, eb=eb, parametric=parametric, mean_only=mean_only)


def site_statistics(
    get,
    n_features,
    site_codes,
    n_sites,
    covariate_design,
    *,
    ref_level=None,
    coef=None,
    design_names=None,
):
    """Regress, standardize, and summarize each site (arguments of :func:`fit_combat`).

    Returns
    -------
    SiteStatistics
    """
    n_samples = site_codes.shape[0]
    onehot = _site_onehot(site_codes, n_sites)
    site_design = onehot.copy()
    if ref_level is not None:
        site_design[:, ref_level] = 1.0
    design = np.hstack([site_design, covariate_design])
    n_cov = covariate_design.shape[1]
    compute_coef = coef is None
    if compute_coef:
        coef = np.empty((n_sites + n_cov, n_features))
        gram = design.T @ design
        if np.linalg.matrix_rank(gram) < gram.shape[0]:
            raise ValueError(singular_design_message(design, design_names))
        gram_inv = np.linalg.inv(gram)
    # per-site sums of the residuals and of their squares, from which every
    # statistic of a column without NaN follows (s = (R + site offset) / sd, as
    # neuroCombat standardizes)
    s1 = np.empty((n_sites, n_features))
    ss = np.empty((n_sites, n_features))
    site_sizes = onehot.sum(axis=0)
    rows_by_site = [np.flatnonzero(site_codes == i) for i in range(n_sites)]
    probe = SiteProbe(rows_by_site)
    probed = np.empty((probe.rows.size, n_features))
    raw, limit = _unchecked(get)
    onehot_t = np.ascontiguousarray(onehot.T)
    design_t = np.ascontiguousarray(design.T)
    blocks = list(cache_blocks(n_samples, n_features))
    # one buffer, in the data's layout, small enough to stay in cache: only
    # the first read of a block goes to memory
    buf = None
    with blas_one_thread(n_samples * n_features):
        for start, stop in blocks:
            cols = slice(start, stop)
            block = raw(start, stop)
            if limit is not None and block.size:
                with np.errstate(invalid="ignore"):
                    if (
                        np.fmax.reduce(block, axis=None) > limit
                        or np.fmin.reduce(block, axis=None) < -limit
                    ):
                        get(start, stop)  # raises, naming the row and column
            if buf is None or buf.shape[1] != stop - start:
                buf = np.empty_like(block, order=block_layout(block))
            s1[:, cols], ss[:, cols] = _residual_sums(
                block,
                coef[:, cols],
                buf,
                (design, design_t, onehot, onehot_t),
                gram_inv if compute_coef else None,
            )
            probed[:, cols] = block[probe.rows]
    del buf
    # features constant within a site: decided from the probed rows, the
    # columns they leave in doubt read again in full
    constant = probe.decide(probed, lambda cols: _columns(raw, cols, n_samples))

    sizes = site_sizes[:, None]
    # design row of each site, to recover the per-site offsets from the coefficients
    site_rows = np.eye(n_sites)
    if ref_level is not None:
        site_rows[:, ref_level] = 1.0
    if ref_level is None:
        grand_mean = (site_sizes @ coef[:n_sites]) / n_samples
        var_pooled = ss.sum(axis=0) / n_samples
    else:
        grand_mean = coef[ref_level].copy()
        var_pooled = ss[ref_level] / site_sizes[ref_level]
    mean_r = s1 / sizes
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(var_pooled)
        site_mean = (mean_r + site_rows @ coef[:n_sites] - grand_mean) / sd
        site_var = (ss - sizes * mean_r**2) / (sizes - 1) / var_pooled
    counts = np.repeat(sizes, n_features, axis=1)
    # columns with NaN: estimated apart, NaN cells left out of every sum
    slow = np.flatnonzero(~(np.isfinite(s1).all(axis=0) & np.isfinite(ss).all(axis=0)))
    if slow.size:
        regression = _Design(
            design,
            onehot,
            site_sizes,
            covariate_design,
            n_sites,
            ref_level,
            None if ref_level is None else site_codes == ref_level,
        )
        for start, stop in column_blocks(n_samples, n_features):
            idx = slow[(slow >= start) & (slow < stop)]
            if not idx.size:
                continue
            sub = np.ascontiguousarray(raw(start, stop)[:, idx - start])
            est = _fit_block_nan(sub, coef[:, idx], regression, compute_coef)
            coef[:, idx] = est.coef
            grand_mean[idx] = est.grand_mean
            var_pooled[idx] = est.var_pooled
            site_mean[:, idx] = est.site_mean
            site_var[:, idx] = est.site_var
            counts[:, idx] = est.counts

    return SiteStatistics(
        coef=coef,
        grand_mean=grand_mean,
        var_pooled=var_pooled,
        site_mean=site_mean,
        site_var=site_var,
        counts=counts,
        constant=constant,
        n_sites=n_sites,
        ref_level=ref_level,
    )


def shrink_sites(stats, *, eb=True, parametric=True, mean_only=False):
    """Site location/scale adjustments from :class:`SiteStatistics` (EB or plain).

    Features without residual variance are left unharmonized; site/feature
    pairs without spread (degenerate) keep their location estimate and an
    identity scale.

    Returns
    -------
    ComBatModel
    """
    coef, grand_mean, var_pooled = stats.coef, stats.grand_mean, stats.var_pooled
    site_mean, site_var, counts = stats.site_mean, stats.site_var, stats.counts
    n_sites, ref_level = stats.n_sites, stats.ref_level
    # zero residual variance up to rounding: constant (or fully explained) feature
    tiny = (1e3 * np.finfo(np.float64).eps * (np.abs(grand_mean) + 1.0)) ** 2
    # a site without any finite value of the feature: nothing to estimate
    # there, the other sites are harmonized without it (see _fit_block_nan)
    empty = counts == 0
    with np.errstate(invalid="ignore"):
        ok = (
            np.isfinite(var_pooled)
            & (var_pooled > tiny)
            & (np.isfinite(coef[:n_sites]) | empty).all(axis=0)
            & np.isfinite(coef[n_sites:]).all(axis=0)
            & (np.isfinite(site_mean) | empty).all(axis=0)
            & (empty.sum(axis=0) < n_sites)
        )
    if ref_level is not None:
        ok &= ~empty[ref_level]
    if mean_only:
        degenerate = np.zeros(site_var.shape, dtype=bool)
    else:
        # no spread of the feature within a site (e.g. a voxel size that is the
        # same for every scan of a site): its location is estimable, its scale
        # is not; the other sites are unaffected
        with np.errstate(invalid="ignore"):
            degenerate = (ok & ~empty) & (
                stats.constant | ~(np.isfinite(site_var) & (site_var > SITE_VAR_TINY))
            )
        if ref_level is not None:
            degenerate[ref_level] = False

    gamma_hat = site_mean.copy()
    if ref_level is not None:
        # OLS on the site design whose reference column is all ones.
        others = np.arange(n_sites) != ref_level
        gamma_hat[others] -= site_mean[ref_level]
    delta_hat = np.ones_like(site_var) if mean_only else site_var.copy()

    gamma_star, delta_star, priors = adjustments(
        EBInput(
            gamma_hat,
            delta_hat,
            site_mean,
            site_var,
            counts,
            ok,
            skip=ref_level,
            cell_ok=~(degenerate | empty),
        ),
        EBOptions(eb=eb, parametric=parametric, mean_only=mean_only),
    )
    gamma_star[degenerate] = gamma_hat[degenerate]
    delta_star[degenerate] = 1.0
    # an empty pair has no estimate: the identity (new rows of that site keep
    # their values of that feature, unharmonized, and are warned of)
    gamma_star[empty] = 0.0
    delta_star[empty] = 1.0
    if ref_level is not None:
        gamma_star[ref_level] = 0.0
        delta_star[ref_level] = 1.0
    gamma_star[:, ~ok] = 0.0
    delta_star[:, ~ok] = 1.0
    return ComBatModel(
        coef=coef,
        n_sites=n_sites,
        grand_mean=grand_mean,
        var_pooled=var_pooled,
        gamma_hat=gamma_hat,
        delta_hat=delta_hat,
        gamma_star=gamma_star,
        delta_star=delta_star,
        priors=priors,
        ok=ok,
        degenerate=degenerate,
        ref_level=ref_level,
        empty=empty,
    )


@dataclass(frozen=True, eq=False)
class _Design:
    """The regression design of :func:`site_statistics`, for its NaN path.

    ``design`` (site indicators, then covariates), ``onehot`` (site of each
    row), ``site_sizes`` (rows per site), ``covariate_design``, ``n_sites``,
    ``ref_level`` and ``ref_rows`` (rows of the reference site, or None).
    """

    design: np.ndarray
    onehot: np.ndarray
    site_sizes: np.ndarray
    covariate_design: np.ndarray
    n_sites: int
    ref_level: int
    ref_rows: np.ndarray


def _fit_block_nan(block, bcoef, regression, compute_coef):
    """Per-feature estimates for columns with NaN cells (left out of every sum).

    ``regression`` is the :class:`_Design`; returns a :class:`SiteStatistics` of
    the block's columns (``constant`` left None: the caller computes it).
    """
    design, onehot, n_sites = regression.design, regression.onehot, regression.n_sites
    ref_level = regression.ref_level
    bcoef = bcoef.copy()
    nan = np.isnan(block)
    cnt = regression.site_sizes[:, None] - onehot.T @ nan
    # a site without any finite value of a feature (an empty pair) has no
    # column in that feature's regression: the feature is estimated from the
    # other sites' rows, as if the site were absent; its coefficient is NaN
    empty = cnt == 0
    if compute_coef:
        for j in range(block.shape[1]):
            rows = ~nan[:, j]
            keep = np.ones(design.shape[1], dtype=bool)
            keep[:n_sites] = ~empty[:, j]
            if ref_level is not None and empty[ref_level, j]:
                keep[:] = False  # no reference: the feature is not estimable
            sub = design[np.ix_(rows, keep)]
            bcoef[:, j] = np.nan
            if keep.any() and np.linalg.matrix_rank(sub) == sub.shape[1]:
                bcoef[keep, j] = np.linalg.lstsq(sub, block[rows, j], rcond=None)[0]
    site_coef = np.where(empty, 0.0, bcoef[:n_sites])  # empty sites: no rows
    fit_coef = np.vstack([site_coef, bcoef[n_sites:]])
    with np.errstate(invalid="ignore", divide="ignore"):
        if ref_level is None:
            gm = (cnt * site_coef).sum(axis=0) / cnt.sum(axis=0)
        else:
            gm = bcoef[ref_level]
        resid2 = (block - design @ fit_coef) ** 2
        rows = slice(None) if regression.ref_rows is None else regression.ref_rows
        resid2 = resid2[rows]
        n_finite = (~np.isnan(resid2)).sum(axis=0)
        var = np.nansum(resid2, axis=0) / np.where(n_finite > 0, n_finite, np.nan)
        s = (block - gm - regression.covariate_design @ bcoef[n_sites:]) / np.sqrt(var)
    mean, site_var = _site_stats(s, onehot, cnt)
    return SiteStatistics(
        coef=bcoef,
        grand_mean=gm,
        var_pooled=var,
        site_mean=mean,
        site_var=site_var,
        counts=cnt,
        constant=None,
        n_sites=n_sites,
        ref_level=ref_level,
    )


def standardize(block, covariate_design, coef_cov, grand_mean, var_pooled):
    """Standardized data ``(X - grand mean - covariate effects) / sqrt(var)``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (block - grand_mean - covariate_design @ coef_cov) / np.sqrt(var_pooled)


def site_tables(params, ref_level=None):
    """Per-site affine map of ``apply_combat``: ``out = a x + e - (a - 1) mod``.

    ``out = M + ((x - M) / sd - g) / sqrt(d) * sd`` with ``M`` the grand mean
    plus covariate effects is ``a x + (1 - a) M - a g sd`` with
    ``a = 1 / sqrt(d)``. Returns ``(a, e)`` of shape ``(n_sites + 1,
    n_features)``: one row per site (the reference site's is the identity),
    then an identity row for rows left unchanged; features not harmonized get
    the identity everywhere. Computed once at fit, so that transforming one
    row costs one gather.
    """
    gamma = params["gamma_star"]
    n_features = gamma.shape[1]
    g_all = np.vstack([gamma, np.zeros((1, n_features))])
    d_all = np.vstack([params["delta_star"], np.ones((1, n_features))])
    if ref_level is not None:
        g_all[ref_level] = 0.0
        d_all[ref_level] = 1.0
    ok = params["ok"]
    sd = np.sqrt(params["var_pooled"])
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.where(ok, 1.0 / np.sqrt(d_all), 1.0)
        e = np.where(ok, params["grand_mean"] * (1.0 - a) - a * g_all * sd, 0.0)
    return a, e
