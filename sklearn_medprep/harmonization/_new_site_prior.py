"""A new site's mean split between its site effect and its target shift.

``unseen_site="estimate_prior"``. Standardized with the fitted model (the
protected target at its training centre), the mean of a new site's rows over
its ``n`` rows is ``m = gamma + s C + noise``: ``gamma`` the site's location,
``s`` the mean over its rows of a centred cubic-spline basis of its (unknown)
target and ``C`` the target's effect on the standardized features in that
basis. Without the site's labels the two are told apart only by what the
training sites say of each:

- site locations: ``gamma ~ N(0, G' G / n_sites)``, ``G`` the training sites'
  location estimates (``gamma_hat``, ``n_sites x n_features``): the directions
  in which sites are seen to differ;
- target shifts: ``s ~ N(0, S' S / n_sites)``, ``S`` the training sites' mean
  spline vectors: how far a site's target distribution is seen to move;
- ``noise ~ N(0, diag(v) / n)``, ``v`` the new site's per-feature variance.

The posterior mean of ``s`` (generalized least squares with that prior) is
``s_hat = (C W C' + P)^-1 C W m``, ``W`` the inverse covariance of ``gamma +
noise`` (Woodbury: ``n_sites x n_sites`` solves, never ``n_features``
squared), ``P`` the pseudo-inverse of the target shifts' covariance; the
location is ``m - s_hat C`` and the scale the variance of the rows outside the
span of ``C`` (:func:`~._sites.outside_target_moments`), both then shrunk by
empirical Bayes as for ``"estimate"``. Every quantity of the prior is learned
in ``fit`` from the training rows; the new site's labels are never read.

``unseen_site="estimate_prior_cov"`` keeps the model and corrects two of its
covariances, both learned on the training rows:

- the noise of the new site's mean is ``Sigma / n``, ``Sigma`` the
  within-site covariance of the training rows' standardized residuals
  (site location and target effect removed; Ledoit-Wolf shrinkage), not a
  diagonal: thickness features move together, and a diagonal noise takes a
  common fluctuation of the site's rows for a target shift;
- the site locations' covariance is ``G' G / n_sites`` less what the noise of
  each training site's own estimate adds to it (``Sigma`` times the mean of
  ``1 / n_k`` over the training sites' rows ``n_k``), its negative
  eigenvalues set to zero (a method-of-moments between-site covariance);

and it shrinks the new site's scale per feature towards the training sites'
(:func:`prior_scale`): the log of the new site's variance outside the
target's span is averaged with the mean of the training sites' log scales,
weighted by the inverse of its sampling variance (trigamma of half its
degrees of freedom) and of the training sites' spread beyond theirs
(empirical Bayes across sites, per feature: the prior of :mod:`._site_prior`
that ``QuantileComBatHarmonizer(shrinkage="sites")`` shares). A new site whose estimated
target shift lies far beyond every training site's is taken for one unlike
them (another scanner or software release) and gets a site covariance
inflated by marginal likelihood (:func:`_dense_prior_location`). Both
covariances are
``n_features x n_features``: the option is refused above
``MAX_COV_FEATURES`` features.
"""

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.covariance import ledoit_wolf
from sklearn.preprocessing import SplineTransformer

from ..exceptions import MedprepWarning, plain
from ._core import SITE_VAR_TINY, standardize
from ._site_prior import gaussian_log_variance, posterior_weight, site_prior

__all__ = [
    "MAX_COV_FEATURES",
    "NewSitePrior",
    "fit_new_site_prior",
    "prior_location",
    "prior_scale",
]

#: Interior knots of the cubic spline of a numeric protected target.
PRIOR_SPLINE_KNOTS = 5

#: Most features ``unseen_site="estimate_prior_cov"`` accepts (its two
#: covariances are ``n_features x n_features``).
MAX_COV_FEATURES = 5000


@dataclass(frozen=True, eq=False)
class NewSitePrior:
    """What ``fit`` learns for ``unseen_site="estimate_prior"``.

    Attributes
    ----------
    effect : ndarray of shape (n_basis, n_features)
        ``C``: the target's effect on the standardized features, one row per
        basis column (zero where a feature is not harmonized).
    shift_precision : ndarray of shape (n_basis, n_basis)
        ``P``: pseudo-inverse of the covariance of the training sites' mean
        basis vectors.
    site_locations : ndarray of shape (n_sites, n_features)
        ``G``: the training sites' location estimates (zero where a feature is
        not harmonized).
    noise_cov, site_cov : ndarray of shape (n_features, n_features) or None
        ``unseen_site="estimate_prior_cov"``: the within-site covariance of
        the standardized residuals and the debiased covariance of the site
        locations; None for ``"estimate_prior"`` (diagonal noise, ``G' G /
        n_sites``).
    log_scale_mean, log_scale_var : ndarray of shape (n_features,) or None
        ``"estimate_prior_cov"``: mean of the training sites' log scales and
        their variance beyond sampling noise (the prior of :func:`prior_scale`).
    shift_limit : float or None
        The largest distance ``s P s'`` of a training site's own target
        shift; a new site whose estimated shift lies ``OUTLIER_FACTOR`` times
        farther is taken for a site outside the training sites' distribution
        (``"estimate_prior_cov"``) or warned of (``"estimate_prior"``;
        :func:`prior_location`).
    """

    effect: np.ndarray
    shift_precision: np.ndarray
    site_locations: np.ndarray
    noise_cov: np.ndarray = None
    site_cov: np.ndarray = None
    log_scale_mean: np.ndarray = None
    log_scale_var: np.ndarray = None
    shift_limit: float = None


def _target_basis_rows(design_cov, target_mask, kind):
    """Centred basis of the training rows' target: a spline of a numeric one."""
    t = design_cov[:, target_mask]
    if kind == "linear":
        t = SplineTransformer(
            n_knots=PRIOR_SPLINE_KNOTS, degree=3, include_bias=False
        ).fit_transform(t[:, :1])
    return t - t.mean(axis=0)


def fit_new_site_prior(get, n_features, design_cov, codes, n_sites, model,
                       target_mask, kind, *, covariances=False):
    """Learn :class:`NewSitePrior` from the training rows.

    Parameters
    ----------
    get : callable
        ``get(start, stop)`` -> the training rows' feature columns.
    n_features : int
    design_cov : ndarray of shape (n_samples, n_design)
        The training rows' covariate design, target at each row's own value.
    codes : ndarray of int of shape (n_samples,)
        Training site of each row.
    n_sites : int
    model : ComBatModel
        The fitted model.
    target_mask : ndarray of bool of shape (n_design,)
        The target's design columns.
    kind : str
        The target term's kind (``"linear"`` gets a spline, ``"classes"``
        and ``"smooth"`` keep their design columns).
    covariances : bool, default=False
        Also learn the covariances and the scale prior of
        ``unseen_site="estimate_prior_cov"``.

    Returns
    -------
    NewSitePrior

    Raises
    ------
    ValueError
        With ``covariances`` and more than ``MAX_COV_FEATURES`` features.
    """
    if covariances and n_features > MAX_COV_FEATURES:
        raise ValueError(
            f"unseen_site='estimate_prior_cov' keeps two n_features x "
            f"n_features covariances; {n_features} features are more than "
            f"{MAX_COV_FEATURES}: use unseen_site='estimate_prior'")
    ok = np.asarray(model["ok"], dtype=bool)
    mask = np.asarray(target_mask, dtype=bool)
    centred = design_cov.copy()
    centred[:, mask] = design_cov[:, mask].mean(axis=0)
    z = standardize(get(0, n_features), centred, model["coef_cov"],
                    model["grand_mean"], model["var_pooled"])
    locations = np.where(ok, np.nan_to_num(np.asarray(model["gamma_hat"])), 0.0)
    residual = np.nan_to_num(z - locations[codes])  # NaN cells on the mean
    basis = _target_basis_rows(design_cov, mask, kind)
    effect = np.linalg.lstsq(basis, residual - residual.mean(axis=0),
                             rcond=None)[0]
    site_means = np.stack([basis[codes == j].mean(axis=0)
                           for j in range(n_sites)])
    precision = np.linalg.pinv(site_means.T @ site_means / n_sites)
    effect = np.where(ok, effect, 0.0)
    limit = float(np.einsum("ij,jk,ik->i", site_means, precision, site_means).max())
    if not covariances:
        return NewSitePrior(effect, precision, locations, shift_limit=limit)
    within = residual - residual.mean(axis=0) - basis @ effect
    noise = ledoit_wolf(np.where(ok, within, 0.0), assume_centered=True)[0]
    n_rows = np.bincount(codes, minlength=n_sites).astype(float)
    site_cov = locations.T @ locations / n_sites - noise * np.mean(1.0 / n_rows)
    eigval, eigvec = np.linalg.eigh(site_cov)
    site_cov = (eigvec * np.maximum(eigval, 0.0)) @ eigvec.T
    log_mean, log_var = _log_scale_prior(model, n_rows, ok)
    return NewSitePrior(effect, precision, locations, noise, site_cov,
                        log_mean, log_var, limit)


def _log_scale_prior(model, n_rows, ok):
    """Mean and spread (beyond sampling noise) of the training log scales.

    The prior across sites of :mod:`._site_prior`, centre estimated, on the
    training sites' log scales with the Gaussian bias and noise
    (:func:`~._site_prior.gaussian_log_variance`). Sites of fewer than 3
    rows and degenerate or empty site/feature pairs are left out; a feature
    without 2 usable sites gets the prior ``(0, 0)``: its new-site scale is 1.
    """
    delta = np.asarray(model["delta_hat"], dtype=float)
    usable = (np.isfinite(delta) & (delta > SITE_VAR_TINY)
              & (n_rows[:, None] >= 3))
    logs, noise = gaussian_log_variance(np.where(usable, delta, 1.0),
                                        np.maximum(n_rows, 3.0)[:, None])
    mean, var = site_prior(logs, noise, usable, centre="mean")
    enough = ok & np.isfinite(var)
    return np.where(enough, mean, 0.0), np.where(enough, var, 0.0)


def prior_scale(var, counts, prior):
    """The new site's scale per feature, shrunk towards the training sites'.

    ``var`` and ``counts`` (``(n_features,)``): the site's variance outside
    the target's span and its rows. The bias-corrected ``log var`` (sampling
    variance ``trigamma((n - 1) / 2)``:
    :func:`~._site_prior.gaussian_log_variance`) and the prior
    ``N(log_scale_mean, log_scale_var)`` are averaged by their precisions
    (:func:`~._site_prior.posterior_weight`); a prior without spread gives
    the prior mean, a feature with a non-finite variance or fewer than 3
    rows 1.
    """
    use = np.isfinite(var) & (var > 0) & (counts >= 3)
    log_var, noise = gaussian_log_variance(np.where(use, var, 1.0),
                                           np.where(use, counts, 3.0))
    # weight 0 where the sites' scales do not spread
    weight = posterior_weight(prior.log_scale_var, noise)
    post = prior.log_scale_mean + weight * (log_var - prior.log_scale_mean)
    return np.where(use, np.exp(post), 1.0)


def prior_location(mean, var, counts, prior, *, site=None):
    """The new site's location: its mean less the posterior target shift.

    ``mean``, ``var``, ``counts`` (``(n_features,)``): the site's standardized
    per-feature mean, ddof=1 variance and rows. Features with a non-finite
    mean or variance, or outside the prior (zero effect and locations), are
    left out of the split and keep their mean. ``site`` (the new site's
    label) names it in the warning of a shift beyond every training site's.
    """
    effect, locations = prior.effect, prior.site_locations
    if prior.site_cov is not None:
        return _dense_prior_location(mean, counts, prior)
    use = (np.isfinite(mean) & np.isfinite(var) & (counts > 0)
           & ((effect != 0).any(axis=0) | (locations != 0).any(axis=0)))
    c, g, m = effect[:, use], locations[:, use], mean[use]
    noise = np.maximum(var[use], 1e-12) / counts[use]  # diagonal of the noise
    n_sites = g.shape[0]
    # W = (D + G'G / n_sites)^-1 by Woodbury: W x = D^-1 x - D^-1 G' K^-1 G D^-1 x
    inner = n_sites * np.eye(n_sites) + (g / noise) @ g.T

    def w(a):
        a = a / noise
        return a - (np.linalg.solve(inner, g @ a.T).T @ g) / noise

    wc = w(c)
    shift = np.linalg.solve(wc @ c.T + prior.shift_precision, wc @ m)
    if (prior.shift_limit is not None
            and shift @ prior.shift_precision @ shift
            > OUTLIER_FACTOR * prior.shift_limit):
        warnings.warn(
            f"new site {plain(site)!r}: its estimated target shift lies "
            "beyond every training site's "
            f"({OUTLIER_FACTOR:g} times the farthest one's squared distance): "
            "either its target distribution lies outside the training "
            "sites', or its features carry an offset the training sites "
            "never showed (another scanner or software release), which "
            "unseen_site='estimate_prior' takes for a target shift and keeps "
            "(see the user guide, 'New sites'); unseen_site="
            "'estimate_prior_cov' treats such a site as one outside the "
            "training sites' distribution",
            MedprepWarning,
            stacklevel=2,
        )
    return mean - shift @ effect


def _dense_prior_location(mean, counts, prior):
    """:func:`prior_location` with the covariances of ``"estimate_prior_cov"``.

    The covariance of ``gamma + noise`` is ``site_cov + D Sigma D`` (``D =
    diag(1 / sqrt(counts))``), restricted to the features with a finite
    mean and rows, solved directly. If the target shift so estimated lies
    more than twice as far as every training site's, in the shift prior's
    standard deviations (``s P s' > OUTLIER_FACTOR * shift_limit``), the new
    site is taken for one outside the training sites' distribution (another
    scanner or software release: a location in directions the training sites
    never moved): ``lambda diag(site_cov)`` is added to the site covariance,
    ``lambda`` (on the grid :data:`OUTLIER_GRID`) maximizing the marginal
    likelihood of the site's mean, and the split is solved again.
    """
    effect = prior.effect
    use = (np.isfinite(mean) & (counts > 0)
           & ((effect != 0).any(axis=0) | (prior.site_locations != 0).any(axis=0)))
    c, m = effect[:, use], mean[use]
    root = 1.0 / np.sqrt(counts[use])
    site_cov = prior.site_cov[np.ix_(use, use)]
    cov = site_cov + prior.noise_cov[np.ix_(use, use)] * np.outer(root, root)
    shift = _posterior_shift(cov, c, m, prior.shift_precision)
    if shift @ prior.shift_precision @ shift > OUTLIER_FACTOR * prior.shift_limit:
        spread = np.diag(np.diag(site_cov))
        shifts = c.T @ np.linalg.pinv(prior.shift_precision) @ c
        best = max(OUTLIER_GRID, key=lambda lam: _log_likelihood(
            cov + lam * spread + shifts, m))
        shift = _posterior_shift(cov + best * spread, c, m, prior.shift_precision)
    return mean - shift @ effect


#: The inflations of the site covariance's diagonal tried for a new site
#: outside the training sites' distribution.
OUTLIER_GRID = np.logspace(-2, 4, 25)

#: A new site whose estimated target shift is farther than this times the
#: farthest training site's squared distance (twice in standard deviations)
#: is taken for a site outside the training sites' distribution. A chosen
#: constant, between FCON1000's held-out sites (none reaches it) and the
#: OpenNeuro sites (every one exceeds it; benchmarks/bench_new_sites.py
#: --decompose and --transfer).
OUTLIER_FACTOR = 4.0


def _posterior_shift(cov, c, m, precision):
    """``(C W C' + P)^-1 C W m``, ``W = cov^-1`` (cov positive definite)."""
    wc = np.linalg.solve(cov, c.T).T
    return np.linalg.solve(wc @ c.T + precision, wc @ m)


def _log_likelihood(cov, m):
    """Log density of ``m`` under ``N(0, cov)``, less its constant."""
    _, logdet = np.linalg.slogdet(cov)
    return -0.5 * (logdet + m @ np.linalg.solve(cov, m))
