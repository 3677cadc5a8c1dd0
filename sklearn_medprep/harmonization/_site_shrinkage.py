"""Empirical Bayes across sites: shrink each site's correction by its own noise.

ComBat's empirical Bayes (:mod:`._eb`) shrinks a site's location towards the
mean of that site's estimates over the *features*, with a prior variance that
includes their noise: where the sites do not differ, about half of each
site's sampling error is still applied, and every row of the site shares it.
Here the prior is taken *across sites*, per feature (:mod:`._site_prior`,
the prior ``unseen_site="estimate_prior_cov"`` shares): the true site effects
``gamma_sf ~ N(0, tau_f**2)``, ``tau_f**2`` estimated by the method of
moments as the mean over sites of the squared estimates less the mean of
their sampling variances (clipped at 0), and each estimate is replaced by its
posterior mean ``gamma_hat * tau**2 / (tau**2 + v)``. A feature whose sites
do not differ beyond their noise gets no correction; one whose sites differ
far beyond it gets the full estimate. The same for the log-scales (around
their estimated mean over sites, one degree of freedom spent on it, the
sampling variance of a log-variance with the feature's kurtosis:
:func:`~._site_prior.log_variance_noise`), and for the quantile maps of
:class:`~sklearn_medprep.QuantileComBatHarmonizer` (each site's map moved
towards the identity, its noise from a bootstrap of the site's rows).
Everything is computed from per-site summaries of the training rows.
"""

import numpy as np

from ._site_prior import posterior_factor

__all__ = [
    "kurtosis",
    "quantile_noise",
    "shrink_maps",
]


def kurtosis(resid, codes, n_sites):
    """Each feature's kurtosis, pooled over sites (rows standardized per site).

    Parameters
    ----------
    resid : ndarray of shape (n_samples, n_features)
        Training residuals (NaN skipped).
    codes : ndarray of int of shape (n_samples,)
        Site code of each row.
    n_sites : int

    Returns
    -------
    ndarray of shape (n_features,)
        ``mean(z**4)`` over the rows, ``z`` each row's residual centred and
        scaled (ddof=0) within its site; NaN where no site has spread.
    """
    z = np.full(resid.shape, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        for i in range(n_sites):
            rows = codes == i
            if not rows.any():
                continue
            r = resid[rows]
            finite = np.isfinite(r)
            count = finite.sum(axis=0)
            mean = np.where(finite, r, 0.0).sum(axis=0) / count
            centred = np.where(finite, r - mean, np.nan)
            sd = np.sqrt((np.where(finite, centred, 0.0) ** 2).sum(axis=0) / count)
            z[rows] = np.where(sd > 0, centred / sd, np.nan)
        finite = np.isfinite(z)
        return (np.where(finite, z, 0.0) ** 4).sum(axis=0) / finite.sum(axis=0)


def quantile_noise(resid, codes, n_sites, levels, n_boot, rng):
    """Bootstrap variance of each site's residual quantiles.

    Parameters
    ----------
    resid : ndarray of shape (n_samples, n_features)
    codes : ndarray of int of shape (n_samples,)
    n_sites : int
    levels : ndarray of shape (n_quantiles,)
    n_boot : int
        Resamples of each site's rows (with replacement).
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of shape (n_sites, n_quantiles, n_features)
        ddof=1 variance over the resamples (NaN for a site without rows).
    """
    out = np.full((n_sites, levels.size, resid.shape[1]), np.nan)
    for i in range(n_sites):
        r = resid[codes == i]
        if r.shape[0] < 2:
            continue
        idx = rng.integers(0, r.shape[0], size=(n_boot, r.shape[0]))
        out[i] = np.nanvar(np.nanquantile(r[idx], levels, axis=1), axis=1, ddof=1)
    return out


def shrink_maps(site_q, pooled_q, noise, cells):
    """Move each site's quantile map towards the identity by its noise.

    The displacement of site ``s``'s knots, ``pooled_q - site_q[s]``, gets
    one posterior factor per site and feature (:func:`~._site_prior.posterior_factor` on
    the root mean square displacement and mean noise over the interior
    levels, centre 0: the pooled map; the extreme quantiles, the minimum and
    maximum, have a bootstrap variance that misses their bias with the
    site's size). One factor per map keeps it monotone.

    Parameters
    ----------
    site_q : ndarray of shape (n_sites, n_quantiles, n_features)
    pooled_q : ndarray of shape (n_quantiles, n_features)
    noise : ndarray of shape (n_sites, n_quantiles, n_features)
        Sampling variance of ``site_q`` (:func:`quantile_noise`).
    cells : ndarray of bool of shape (n_sites, n_features)
        Maps entering the prior and shrunk.

    Returns
    -------
    targets : ndarray of shape (n_sites, n_quantiles, n_features)
        ``site_q + factor * (pooled_q - site_q)``.
    factor : ndarray of shape (n_sites, n_features)
    """
    disp = pooled_q[None] - site_q
    inner = slice(1, -1) if site_q.shape[1] > 2 else slice(None)
    with np.errstate(invalid="ignore"):
        rms = np.sqrt(np.mean(disp[:, inner] ** 2, axis=1))
        var = np.mean(noise[:, inner], axis=1)
    factor, _, _ = posterior_factor(rms, var, cells)
    return site_q + factor[:, None, :] * disp, factor
