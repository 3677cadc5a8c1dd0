"""The sites of the rows that ComBat transforms: training, new, or passed through.

A batch of rows handed to ``transform`` mixes rows of training sites (each
harmonized with its site's fitted parameters), rows of sites absent at ``fit``
whose parameters are estimated from their rows (``unseen_site="estimate"``:
:class:`NewSite`) and rows left unchanged (``unseen_site="passthrough"``).
:class:`BatchSites` says which is which with a mask and lists, instead of
integer codes with reserved negative values; :func:`resolve_unseen` applies
the ``unseen_site`` policy, for ComBat and voxel-wise ComBat alike.
"""

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..exceptions import MedprepWarning, SubjectTableError, plain
from . import _design as design
from ._blocks import column_blocks
from ._core import SITE_VAR_TINY, _constant_within_sites, _site_stats, standardize
from ._eb import EBInput, EBOptions, adjustments
from ._new_site_prior import prior_location, prior_scale

__all__ = [
    "BatchSites",
    "NewSite",
    "estimate_new_site",
    "outside_target_moments",
    "resolve_unseen",
]


@dataclass
class NewSite:
    """A site absent at ``fit``, estimated from its rows of the batch.

    Attributes
    ----------
    label : object
        The site.
    rows : ndarray of int
        Positions of its rows in the batch.
    gamma_star, delta_star : ndarray of shape (n_features,)
        Its location/scale adjustments.
    """

    label: object
    rows: np.ndarray
    gamma_star: np.ndarray
    delta_star: np.ndarray


@dataclass
class BatchSites:
    """The site of each row of a batch to transform.

    Attributes
    ----------
    codes : ndarray of int of shape (n_samples,)
        Position of each row's site among the training sites; only meaningful
        where ``seen``.
    seen : ndarray of bool of shape (n_samples,)
        Rows of a training site.
    new_sites : list of NewSite
        Estimated new sites (their rows are not ``seen``).
    """

    codes: np.ndarray
    seen: np.ndarray
    new_sites: list = field(default_factory=list)

    @classmethod
    def encode(cls, labels, values):
        """Rows' sites among the training sites ``labels``."""
        codes, seen = design.encode_sites(labels, values)
        return cls(codes, seen)

    @property
    def unseen(self):
        """Rows of sites absent at ``fit``."""
        return ~self.seen

    @property
    def passthrough(self):
        """Rows left unchanged: unseen and not estimated."""
        keep = ~self.seen
        for site in self.new_sites:
            keep[site.rows] = False
        return keep

    def rows_slice(self, start, stop):
        """The sites of rows ``start:stop`` (every new site kept, maybe rowless)."""
        new_sites = []
        for site in self.new_sites:
            inside = site.rows[(site.rows >= start) & (site.rows < stop)]
            new_sites.append(
                NewSite(site.label, inside - start, site.gamma_star, site.delta_star)
            )
        return BatchSites(
            self.codes[start:stop], self.seen[start:stop], new_sites
        )

    def table_rows(self, n_sites):
        """Row of each batch row in the stacked per-site tables.

        The tables stack the ``n_sites`` training sites, one identity row
        (rows passed through), then the new sites in order.
        """
        rows = np.where(self.seen, self.codes, n_sites)
        for j, site in enumerate(self.new_sites):
            rows[site.rows] = n_sites + 1 + j
        return rows


def resolve_unseen(
    sites, policy, site_values, index, column, training, estimate, *, protected
):
    """Apply the ``unseen_site`` policy to the rows of new sites, in place.

    Parameters
    ----------
    sites : BatchSites
        The batch's sites; new sites are appended to ``sites.new_sites``.
    policy : {"error", "estimate", "estimate_outside_target", \
"estimate_prior", "estimate_prior_cov", "passthrough"}
        The estimator's ``unseen_site``.
    site_values : ndarray of shape (n_samples,)
        Site of each row.
    index : pandas.Index
        Row labels, for messages.
    column : str or None
        Site column, for messages.
    training : ndarray
        The training sites, for messages.
    estimate : callable
        ``estimate(rows) -> (gamma_star, delta_star)`` of one new site from
        the positions of its rows.
    protected : bool
        Whether a target is protected (warned: a new site's location absorbs
        the shift of its target distribution).
    """
    unseen = sites.unseen
    if not unseen.any():
        return sites
    new_labels = pd.unique(site_values[unseen])
    if policy == "error":
        raise SubjectTableError(
            f"site {plain(new_labels[0])!r} was not seen in fit (training "
            f"sites: {plain(training)}); set unseen_site='estimate' or "
            "'passthrough' to allow new sites",
            row=design.first_row(index, unseen),
            column=column,
        )
    # resolve_unseen < step < transform < caller
    if policy == "passthrough":
        warnings.warn(
            f"rows of sites {plain(new_labels)} not seen in fit are returned "
            "unharmonized (unseen_site='passthrough')",
            MedprepWarning,
            stacklevel=4,
        )
        return sites
    if protected and policy == "estimate":
        warnings.warn(
            f"new sites {plain(new_labels)} are estimated with the protected "
            "target at its training centre: a new site's location cannot be "
            "told apart from a shift of its target distribution without its "
            "labels, so whatever part of its target's mean differs from the "
            "training one is removed with the site (see the user guide, 'New "
            "sites')",
            MedprepWarning,
            stacklevel=4,
        )
    for label in new_labels:
        rows = design.new_site_rows(site_values, label, index, column)
        gamma_star, delta_star = estimate(rows)
        sites.new_sites.append(NewSite(label, rows, gamma_star, delta_star))
    return sites


def estimate_new_site(
    get,
    n_features,
    covariate_design,
    params,
    *,
    eb,
    parametric,
    mean_only,
    target_basis=None,
    prior=None,
    site=None,
):
    """Estimate the adjustments of one new site from its rows, model held fixed.

    The standardization (grand mean, covariate effects, pooled variance) is the
    fitted one; the new site's location/scale and its priors across features are
    estimated from its own rows, as neuroHarmonize does for new sites.

    With ``target_basis`` (``unseen_site="estimate_outside_target"``), the
    location and scale are estimated outside the span of the protected
    target's standardized coefficients (:func:`outside_target_moments`).
    With ``prior`` (``unseen_site="estimate_prior"``, a
    :class:`~._new_site_prior.NewSitePrior`), the location is the site's mean
    less its posterior target shift (:func:`~._new_site_prior.prior_location`),
    the scale the variance outside the span of the prior's target effect;
    a prior with a scale prior (``"estimate_prior_cov"``) then replaces the
    scale by :func:`~._new_site_prior.prior_scale` (shrunk towards the
    training sites' scales of the feature, not across features). ``site``
    (the new site's label) names it in the prior's warning.

    Returns
    -------
    gamma_star, delta_star : ndarray of shape (n_features,)
    """
    if prior is not None:
        mean, var, counts, _ = _new_site_moments(
            get, n_features, covariate_design, params
        )
        _, var_out, counts, constant = outside_target_moments(
            get, n_features, covariate_design, params, prior.effect
        )
        location = prior_location(mean, var, counts, prior, site=site)
        moments = (location, var_out, counts, constant)
        if prior.log_scale_var is not None and not mean_only:
            return _new_site_adjustments(
                *moments, params["ok"], eb=eb, parametric=parametric,
                mean_only=mean_only, scale=prior_scale(var_out, counts, prior),
            )
    elif target_basis is None:
        moments = _new_site_moments(get, n_features, covariate_design, params)
    else:
        moments = outside_target_moments(
            get, n_features, covariate_design, params, target_basis
        )
    return _new_site_adjustments(
        *moments, params["ok"], eb=eb, parametric=parametric, mean_only=mean_only
    )


def _new_site_moments(get, n_features, covariate_design, params):
    """Mean, ddof=1 variance, non-NaN counts and constancy of the rows, per feature."""
    n_samples = covariate_design.shape[0]
    mean = np.empty(n_features)
    var = np.empty(n_features)
    counts = np.empty(n_features)
    constant = np.empty(n_features, dtype=bool)
    onehot = np.ones((n_samples, 1))
    every_row = [np.arange(n_samples)]
    for start, stop in column_blocks(n_samples, n_features):
        cols = slice(start, stop)
        block = get(start, stop)
        constant[cols] = _constant_within_sites(block, every_row)[0]
        s = _standardized(block, covariate_design, params, cols)
        cnt = (~np.isnan(s)).sum(axis=0)[None].astype(float)
        counts[cols] = cnt[0]
        m, v = _site_stats(s, onehot, cnt)
        mean[cols], var[cols] = m[0], v[0]
    return mean, var, counts, constant


def _standardized(block, covariate_design, params, cols):
    return standardize(
        block,
        covariate_design,
        params["coef_cov"][:, cols],
        params["grand_mean"][cols],
        params["var_pooled"][cols],
    )


def outside_target_moments(get, n_features, covariate_design, params, basis):
    """The new site's moments with its rows' target component left out.

    A new site's rows, standardized with the target at its training centre,
    hold ``gamma + (t - t_bar) B + noise`` per row, ``B`` the protected
    target's coefficients over the pooled standard deviations
    (``basis``, ``(k, n_features)``, zero where a feature is not
    harmonized). Every row's deviation from the site mean is split into its
    least-squares component in the span of ``B`` (the row's target effect as
    its own features estimate it) and the rest; the site mean likewise. The
    location is the mean's part outside the span, the scale the ddof=1
    variance of the rows' parts outside it: whatever a shift or a spread of
    the new site's target distribution moves along ``B`` is kept, whatever
    the site moves elsewhere is removed. The site's own effect along ``B``
    (``k`` directions of ``n_features``) is kept with it.

    The new site's rows are standardized whole (``n_rows x n_features``):
    new sites are small batches. NaN cells count as on the mean in the
    projections and are left out of every mean and variance.
    """
    s = _standardized(get(0, n_features), covariate_design, params,
                      slice(0, n_features))
    finite = ~np.isnan(s)
    counts = finite.sum(axis=0).astype(float)
    constant = _constant_within_sites(get(0, n_features),
                                      [np.arange(s.shape[0])])[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(finite, s, 0.0).sum(axis=0) / counts
    basis = np.where(np.isfinite(mean), basis, 0.0)
    gram_inv = np.linalg.pinv(basis @ basis.T)
    along = basis.T @ (gram_inv @ (basis @ np.nan_to_num(mean)))
    centred = np.where(finite, s - mean, 0.0)
    rows_along = (centred @ basis.T @ gram_inv) @ basis
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(finite, centred - rows_along, 0.0)
        var = (var**2).sum(axis=0) / (counts - 1)
    return mean - along, var, counts, constant


def _new_site_adjustments(mean, var, counts, constant, ok, *, eb, parametric,
                          mean_only, scale=None):
    """Empirical-Bayes adjustments of one new site from its moments.

    ``scale`` (``(n_features,)``), if given, replaces the empirical-Bayes
    scale of the features that have spread.
    """
    n_features = mean.shape[0]
    ok = ok & np.isfinite(mean)
    if mean_only:
        degenerate = np.zeros(n_features, dtype=bool)
    else:
        degenerate = ok & (constant | ~(np.isfinite(var) & (var > SITE_VAR_TINY)))
    delta_hat = np.ones(n_features) if mean_only else var.copy()
    g, d, _ = adjustments(
        EBInput(
            mean[None],
            delta_hat[None],
            mean[None],
            var[None],
            counts[None],
            ok,
            cell_ok=~degenerate[None],
        ),
        EBOptions(eb=eb, parametric=parametric, mean_only=mean_only),
    )
    if scale is not None:
        d[0] = scale
    g[0, degenerate] = mean[degenerate]
    d[0, degenerate] = 1.0
    g[:, ~ok] = 0.0
    d[:, ~ok] = 1.0
    return g[0], d[0]
