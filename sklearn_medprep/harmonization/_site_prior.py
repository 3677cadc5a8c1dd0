"""The prior across sites: how much of a site's estimate is more than noise.

Two steps shrink per-site estimates by a prior taken *across sites*, per
feature: ``QuantileComBatHarmonizer(shrinkage="sites")`` (each training
site's location, log-scale and quantile map; :mod:`._site_shrinkage`) and
``ComBatHarmonizer(unseen_site="estimate_prior_cov")`` (a new site's
log-scale, towards the training sites'; :mod:`._new_site_prior`). Both use
this one model and its method-of-moments estimate. Site ``s``'s estimate of
a feature is ``x_s = c + u_s + e_s``: ``c`` the centre, ``u_s ~ N(0, tau2)``
the site's true effect, ``e_s`` its sampling error of known variance
``v_s``. Then (:func:`site_prior`, over the ``K`` sites that enter):

- with the centre **known** (a location relative to ComBat's grand mean, a
  quantile map relative to the pooled one: ``c = 0``), ``tau2 = max(0,
  sum_s (x_s - c)**2 / K - mean_s v_s)``;
- with the centre **estimated** (log-scales: the sites' common scale is not
  known), ``c = mean_s x_s`` and ``tau2 = max(0, sum_s (x_s - c)**2 / (K -
  1) - mean_s v_s)``.

Both are unbiased before the clipping, for unequal ``v_s`` too: ``E[sum_s
(x_s - c)**2] = K (tau2 + mean v)`` with ``c`` known and ``(K - 1) (tau2 +
mean v)`` with ``c`` the mean. An estimate ``x`` of noise ``v`` (a training
site's own, or a new site's) has the posterior mean ``c + w (x - c)``, ``w =
tau2 / (tau2 + v)`` (:func:`posterior_weight`): no correction where the
sites do not differ beyond their noise, the full estimate where they differ
far beyond it.

The noise of a log-variance is an input, for the two steps model it
differently, on purpose:

- :func:`gaussian_log_variance` (``"estimate_prior_cov"``): the log of a
  ddof=1 variance of ``n`` normal rows has the bias ``digamma((n - 1) / 2) -
  log((n - 1) / 2)`` and the variance ``trigamma((n - 1) / 2)``, exactly at
  every ``n``. The new site's scale is used on its own (the prior's centre is
  the scale a new site gets where the training sites' scales do not spread),
  so its logs must be unbiased, and a new site may be small (FCON1000 has
  sites of 5 rows, where the first-order variance ``2 / (n - 1) = 0.5``
  misses trigamma's 0.645); the kurtosis-aware variance below has no exact
  bias to go with it.
- :func:`log_variance_noise` (``shrinkage="sites"``): the delta-method
  variance with the feature's kurtosis pooled over the training rows. Each
  training site's own estimate is shrunk around the estimated centre, where
  a bias common to the sites cancels; what matters is telling a site's scale
  difference from noise, and on heavy-tailed features (ABIDE's MRIQC metrics)
  a Gaussian variance understates that noise by a factor of about ``(kurtosis
  - 1) / 2`` and keeps noise as site effect.
"""

import numpy as np
from scipy.special import digamma, polygamma

__all__ = [
    "gaussian_log_variance",
    "log_variance_noise",
    "posterior_factor",
    "posterior_weight",
    "site_prior",
]


def site_prior(estimate, noise, cells, *, centre=0.0):
    """Centre and variance beyond noise of per-site estimates, per feature.

    Parameters
    ----------
    estimate : ndarray of shape (n_sites, n_features)
        Per-site estimates.
    noise : ndarray of shape (n_sites, n_features)
        Their sampling variances.
    cells : ndarray of bool of shape (n_sites, n_features)
        Cells entering the prior (non-finite estimates or noises are left
        out too).
    centre : float, ndarray of shape (n_features,) or "mean", default=0.0
        The known centre of the site effects, or ``"mean"``: estimated, the
        mean of each feature's cells (one degree of freedom spent on it).

    Returns
    -------
    centre : ndarray of shape (n_features,)
        The centre (NaN for a feature without cells when estimated).
    tau2 : ndarray of shape (n_features,)
        ``max(0, sum_s (estimate - centre)**2 / (K - ddof) - mean_s(noise))``
        over each feature's ``K`` cells, ``ddof`` 1 with the centre
        estimated, else 0; NaN for a feature with fewer than 2 cells.

    Examples
    --------
    >>> import numpy as np
    >>> est = np.array([[1.0, 2.0], [-1.0, 4.0]])
    >>> cells = np.ones((2, 2), dtype=bool)
    >>> centre, tau2 = site_prior(est, np.full((2, 2), 0.25), cells)
    >>> centre.tolist(), tau2.tolist()
    ([0.0, 0.0], [0.75, 9.75])
    >>> centre, tau2 = site_prior(est, np.full((2, 2), 0.25), cells,
    ...                           centre="mean")
    >>> centre.tolist(), tau2.tolist()
    ([0.0, 3.0], [1.75, 1.75])
    """
    cells = cells & np.isfinite(estimate) & np.isfinite(noise)
    count = cells.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        if isinstance(centre, str):
            if centre != "mean":
                raise ValueError(f"centre must be a number or 'mean', got {centre!r}")
            centre = np.where(cells, estimate, 0.0).sum(axis=0) / count
            ddof = 1
        else:
            centre = np.broadcast_to(np.asarray(centre, dtype=float),
                                     count.shape).copy()
            ddof = 0
        dev = np.where(cells, estimate - centre, 0.0)
        spread = (dev**2).sum(axis=0) / (count - ddof)
        tau2 = np.maximum(spread - np.where(cells, noise, 0.0).sum(axis=0) / count,
                          0.0)
    return centre, np.where(count >= 2, tau2, np.nan)


def posterior_weight(tau2, noise):
    """Weight ``tau2 / (tau2 + noise)`` of an estimate against the centre.

    ``tau2 = noise = 0`` gives 0 (nothing to shrink by, and nothing to
    estimate); a NaN ``tau2`` gives NaN.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = tau2 / (tau2 + noise)
    return np.where(np.isnan(weight) & (tau2 == 0), 0.0, weight)


def posterior_factor(estimate, noise, cells, *, centre=0.0):
    """Posterior weights of the training sites' own estimates (:func:`site_prior`).

    Parameters
    ----------
    estimate, noise : ndarray of shape (n_sites, n_features)
        Per-site estimates and their sampling variances.
    cells : ndarray of bool of shape (n_sites, n_features)
        Cells entering the prior and shrunk (the others get factor 1).
    centre : float, ndarray of shape (n_features,) or "mean", default=0.0
        As for :func:`site_prior`.

    Returns
    -------
    factor : ndarray of shape (n_sites, n_features)
        ``tau2 / (tau2 + noise)`` in the cells, 1 elsewhere and for a feature
        without a prior (fewer than 2 cells); the posterior mean of a cell is
        ``centre + factor * (estimate - centre)``.
    centre, tau2 : ndarray of shape (n_features,)
        As returned by :func:`site_prior`.

    Examples
    --------
    >>> import numpy as np
    >>> est = np.array([[1.0, 0.1], [-1.0, -0.1]])
    >>> factor, _, tau2 = posterior_factor(est, np.full((2, 2), 0.25),
    ...                                    np.ones((2, 2), dtype=bool))
    >>> tau2.tolist(), factor[:, 0].tolist(), factor[:, 1].tolist()
    ([0.75, 0.0], [0.75, 0.75], [0.0, 0.0])
    """
    cells = cells & np.isfinite(estimate) & np.isfinite(noise)
    centre, tau2 = site_prior(estimate, noise, cells, centre=centre)
    factor = posterior_weight(tau2, noise)
    return np.where(cells & np.isfinite(factor), factor, 1.0), centre, tau2


def gaussian_log_variance(var, counts):
    """A ddof=1 variance of normal rows on the log scale, bias removed.

    Parameters
    ----------
    var : ndarray
        Variances (finite and positive).
    counts : ndarray
        Their rows (at least 2), broadcast against ``var``.

    Returns
    -------
    log_var : ndarray
        ``log(var) - (digamma(h) - log(h))``, ``h = (counts - 1) / 2``: an
        unbiased estimate of the log of the true variance.
    noise : ndarray
        Its sampling variance ``trigamma(h)``.
    """
    half = (np.asarray(counts, dtype=float) - 1.0) / 2.0
    return np.log(var) - (digamma(half) - np.log(half)), polygamma(1, half)


def log_variance_noise(kurt, counts):
    """Sampling variance of the log of a ddof=1 variance of ``counts`` rows.

    ``(kurt - (n - 3) / (n - 1)) / n`` (the variance of a sample variance
    relative to its square, by the delta method), ``2 / (n - 1)`` for normal
    data (``kurt = 3``).

    Parameters
    ----------
    kurt : ndarray of shape (n_features,)
    counts : ndarray of shape (n_sites, n_features)

    Returns
    -------
    ndarray of shape (n_sites, n_features)
    """
    n = np.asarray(counts, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.asarray(kurt)[None, :] - (n - 3.0) / (n - 1.0)) / n
