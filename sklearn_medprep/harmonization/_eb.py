"""Empirical-Bayes step of ComBat (Johnson et al. 2007), on per-site summaries.

The location/scale estimates of each site are shrunk towards priors shared by
the site's features: parametric (neuroCombat's iterative ``it_sol``) or
non-parametric (``int_eprior``), both computed from per-site means and
variances of the standardized data, never from the rows themselves.
"""

import numpy as np

__all__ = ["_adjustments"]


def _adjustments(
    gamma_hat,
    delta_hat,
    site_mean,
    site_var,
    counts,
    ok,
    *,
    eb,
    parametric,
    mean_only,
    skip=None,
    cell_ok=None,
):
    """Location/scale adjustments per site: EB (parametric or not) or plain.

    ``cell_ok`` (``(n_sites, n_features)`` bool, default all True) leaves cells
    out of their site's priors and shrinkage (degenerate site/feature pairs,
    which the caller sets).
    """
    n_sites, n_features = gamma_hat.shape
    gamma_star = gamma_hat.copy()
    delta_star = delta_hat.copy()
    priors = {
        "gamma_bar": np.full(n_sites, np.nan),
        "t2": np.full(n_sites, np.nan),
        "a_prior": np.full(n_sites, np.nan),
        "b_prior": np.full(n_sites, np.nan),
    }
    if not eb or ok.sum() < 2:
        return gamma_star, delta_star, priors
    if cell_ok is None:
        cell_ok = np.ones(gamma_hat.shape, dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        _shrink(
            gamma_hat,
            delta_hat,
            site_mean,
            site_var,
            counts,
            ok,
            parametric,
            mean_only,
            skip,
            gamma_star,
            delta_star,
            priors,
            cell_ok,
        )
    return gamma_star, delta_star, priors


def _shrink(
    gamma_hat,
    delta_hat,
    site_mean,
    site_var,
    counts,
    ok,
    parametric,
    mean_only,
    skip,
    gamma_star,
    delta_star,
    priors,
    cell_ok,
):
    """Empirical-Bayes shrinkage of each site's estimates, in place."""
    for i in range(gamma_hat.shape[0]):
        if i == skip:  # the reference site is not adjusted
            continue
        ok_i = ok & cell_ok[i]
        if ok_i.sum() < 2:
            continue
        g_hat = gamma_hat[i, ok_i]
        d_hat = delta_hat[i, ok_i]
        g_bar = g_hat.mean()
        t2 = g_hat.var(ddof=1)
        priors["gamma_bar"][i] = g_bar
        priors["t2"][i] = t2
        if not mean_only:
            a, b = _ab_prior(d_hat)
            priors["a_prior"][i] = a
            priors["b_prior"][i] = b
        if parametric:
            if mean_only:
                g = _postmean(g_hat, g_bar, 1.0, 1.0, t2)
                d = np.ones_like(d_hat)
            else:
                g, d = _it_sol(
                    g_hat,
                    d_hat,
                    site_mean[i, ok_i],
                    site_var[i, ok_i],
                    counts[i, ok_i],
                    g_bar,
                    t2,
                    a,
                    b,
                )
        else:
            g, d = _int_eprior(
                g_hat, d_hat, site_mean[i, ok_i], site_var[i, ok_i], counts[i, ok_i]
            )
        if not (np.isfinite(g).all() and np.isfinite(d).all()):
            # degenerate priors (no spread across features): no shrinkage
            g, d = g_hat, d_hat
        gamma_star[i, ok_i] = g
        delta_star[i, ok_i] = d
    return gamma_star, delta_star, priors


def _ab_prior(delta_hat):
    m = delta_hat.mean()
    s2 = delta_hat.var(ddof=1)
    return (2 * s2 + m**2) / s2, (m * s2 + m**3) / s2


def _postmean(g_hat, g_bar, n, d_star, t2):
    return (t2 * n * g_hat + d_star * g_bar) / (t2 * n + d_star)


def _it_sol(g_hat, d_hat, mean, var, n, g_bar, t2, a, b, conv=1e-4, max_iter=10_000):
    """NeuroCombat's ``it_sol`` on summary statistics.

    ``sum((s - g)**2)`` over the rows of the site is ``(n - 1) var + n (mean -
    g)**2``, so the iteration needs only the per-site mean and variance.
    """
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


def _int_eprior(g_hat, d_hat, mean, var, n, block=512):
    """Non-parametric EB (neuroCombat's ``int_eprior``), vectorized and in log space.

    For feature ``f`` the other features' ``(gamma_hat, delta_hat)`` form the
    prior; each is weighted by the normal likelihood of feature ``f``'s data.
    The log-space weights avoid the underflow of the direct product for large
    sites; where that product does not underflow the two agree.
    """
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
