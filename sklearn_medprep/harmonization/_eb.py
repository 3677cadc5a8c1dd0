"""Empirical-Bayes step of ComBat (Johnson et al. 2007), on per-site summaries.

The location/scale estimates of each site are shrunk towards priors shared by
the site's features: parametric (neuroCombat's iterative ``it_sol``) or
non-parametric (``int_eprior``), both computed from per-site means and
variances of the standardized data, never from the rows themselves.
"""

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = ["EBInput", "EBOptions", "SiteAdjustments", "adjustments"]


@dataclass(frozen=True, eq=False)
class EBOptions:
    """How the site estimates are adjusted (the estimator's options).

    Attributes
    ----------
    eb : bool
        Shrink with empirical Bayes; False keeps the estimates.
    parametric : bool
        Parametric (neuroCombat's ``it_sol``) or non-parametric
        (``int_eprior``) empirical Bayes.
    mean_only : bool
        Adjust only the location.
    """

    eb: bool = True
    parametric: bool = True
    mean_only: bool = False


@dataclass(frozen=True, eq=False)
class EBInput:
    """What the empirical-Bayes step reads: per-site estimates and summaries.

    Attributes
    ----------
    gamma_hat, delta_hat : ndarray of shape (n_sites, n_features)
        Location/scale estimates of each site.
    site_mean, site_var, counts : ndarray of shape (n_sites, n_features)
        Mean, ddof=1 variance and number of rows of the standardized data of
        each site (the likelihood of the parametric iteration).
    ok : ndarray of bool of shape (n_features,)
        Features harmonized (the others are left out of the priors).
    skip : int or None, default=None
        Site not adjusted (the reference site).
    cell_ok : ndarray of bool of shape (n_sites, n_features) or None
        Cells kept in their site's priors and shrinkage (default all):
        degenerate site/feature pairs are left out.
    """

    gamma_hat: np.ndarray
    delta_hat: np.ndarray
    site_mean: np.ndarray
    site_var: np.ndarray
    counts: np.ndarray
    ok: np.ndarray
    skip: int = None
    cell_ok: np.ndarray = None


class SiteAdjustments(NamedTuple):
    """The adjustments of :func:`adjustments`.

    ``gamma_star``, ``delta_star`` (``(n_sites, n_features)``) and the
    ``priors`` (dict of ``(n_sites,)`` arrays: ``gamma_bar``, ``t2``,
    ``a_prior``, ``b_prior``; NaN where not estimated).
    """

    gamma_star: np.ndarray
    delta_star: np.ndarray
    priors: dict


class _Summary(NamedTuple):
    """One site's standardized data: per-feature mean, variance, row count."""

    mean: np.ndarray
    var: np.ndarray
    n: np.ndarray


class _Prior(NamedTuple):
    """One site's priors: location mean/variance, inverse-gamma ``a``, ``b``."""

    g_bar: float
    t2: float
    a: float = None
    b: float = None


def adjustments(data, options):
    """Location/scale adjustments per site: EB (parametric or not) or plain.

    Parameters
    ----------
    data : EBInput
        The site estimates and summaries.
    options : EBOptions
        ``eb``, ``parametric``, ``mean_only``.

    Returns
    -------
    SiteAdjustments
    """
    n_sites, n_features = data.gamma_hat.shape
    out = SiteAdjustments(
        data.gamma_hat.copy(),
        data.delta_hat.copy(),
        {
            "gamma_bar": np.full(n_sites, np.nan),
            "t2": np.full(n_sites, np.nan),
            "a_prior": np.full(n_sites, np.nan),
            "b_prior": np.full(n_sites, np.nan),
        },
    )
    if not options.eb or data.ok.sum() < 2:
        return out
    cell_ok = data.cell_ok
    if cell_ok is None:
        cell_ok = np.ones(data.gamma_hat.shape, dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        _shrink(data, options, cell_ok, out)
    return out


def _shrink(data, options, cell_ok, out):
    """Empirical-Bayes shrinkage of each site's estimates, in place in ``out``."""
    priors = out.priors
    for i in range(data.gamma_hat.shape[0]):
        if i == data.skip:  # the reference site is not adjusted
            continue
        ok_i = data.ok & cell_ok[i]
        if ok_i.sum() < 2:
            continue
        g_hat = data.gamma_hat[i, ok_i]
        d_hat = data.delta_hat[i, ok_i]
        g_bar = g_hat.mean()
        t2 = g_hat.var(ddof=1)
        priors["gamma_bar"][i] = g_bar
        priors["t2"][i] = t2
        prior = _Prior(g_bar, t2)
        if not options.mean_only:
            prior = _Prior(g_bar, t2, *_ab_prior(d_hat))
            priors["a_prior"][i] = prior.a
            priors["b_prior"][i] = prior.b
        summary = _Summary(
            data.site_mean[i, ok_i], data.site_var[i, ok_i], data.counts[i, ok_i]
        )
        if options.parametric:
            if options.mean_only:
                g = _postmean(g_hat, g_bar, 1.0, 1.0, t2)
                d = np.ones_like(d_hat)
            else:
                g, d = _it_sol(g_hat, d_hat, summary, prior)
        else:
            g, d = _int_eprior(g_hat, d_hat, summary)
        if not (np.isfinite(g).all() and np.isfinite(d).all()):
            # degenerate priors (no spread across features): no shrinkage
            g, d = g_hat, d_hat
        out.gamma_star[i, ok_i] = g
        out.delta_star[i, ok_i] = d
    return out


def _ab_prior(delta_hat):
    m = delta_hat.mean()
    s2 = delta_hat.var(ddof=1)
    return (2 * s2 + m**2) / s2, (m * s2 + m**3) / s2


def _postmean(g_hat, g_bar, n, d_star, t2):
    return (t2 * n * g_hat + d_star * g_bar) / (t2 * n + d_star)


def _it_sol(g_hat, d_hat, summary, prior, conv=1e-4, max_iter=10_000):
    """NeuroCombat's ``it_sol`` on summary statistics.

    ``sum((s - g)**2)`` over the rows of the site is ``(n - 1) var + n (mean -
    g)**2``, so the iteration needs only the per-site mean and variance
    (``summary``); ``prior`` holds ``g_bar``, ``t2``, ``a``, ``b``.
    """
    mean, var, n = summary
    g_bar, t2, a, b = prior
    g_old = g_hat.copy()
    d_old = d_hat.copy()
    ss = (n - 1) * var
    for _ in range(max_iter):
        g_new = _postmean(g_hat, g_bar, n, d_old, t2)
        sum2 = ss + n * (mean - g_new) ** 2
        d_new = (0.5 * sum2 + b) / (n / 2.0 + a - 1.0)
        # Same rule as neuroCombat (relative change, signed denominator).
        change = max(
            (np.abs(g_new - g_old) / g_old).max(), (np.abs(d_new - d_old) / d_old).max()
        )
        g_old, d_old = g_new, d_new
        if not change > conv:
            break
    return g_new, d_new


def _int_eprior(g_hat, d_hat, summary, block=512):
    """Non-parametric EB (neuroCombat's ``int_eprior``), vectorized and in log space.

    For feature ``f`` the other features' ``(gamma_hat, delta_hat)`` form the
    prior; each is weighted by the normal likelihood of feature ``f``'s data.
    The log-space weights avoid the underflow of the direct product for large
    sites; where that product does not underflow the two agree.
    """
    mean, var, n = summary
    p = g_hat.shape[0]
    ss = (n - 1) * var
    gamma_star = np.empty(p)
    delta_star = np.empty(p)
    log2pid = np.log(2 * np.pi * d_hat)
    for start in range(0, p, block):
        stop = min(start + block, p)
        nf = n[start:stop, None]
        # sum over rows of (s_f - g_k)**2 = ss_f + n_f (mean_f - g_k)**2
        sum2 = ss[start:stop, None] + nf * (mean[start:stop, None] - g_hat[None]) ** 2
        loglik = -0.5 * nf * log2pid[None] - sum2 / (2 * d_hat[None])
        loglik[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        loglik -= loglik.max(axis=1, keepdims=True)
        w = np.exp(loglik)
        wsum = w.sum(axis=1)
        gamma_star[start:stop] = (w @ g_hat) / wsum
        delta_star[start:stop] = (w @ d_hat) / wsum
    return gamma_star, delta_star
