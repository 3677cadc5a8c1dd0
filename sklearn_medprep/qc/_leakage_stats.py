"""Statistics of the whole-cohort check of :func:`audit_leakage`.

Whole-cohort ComBat leaves the per-site means and variances of the features
more equal across sites than random sampling allows; these are the tests of
that, as left-tail probabilities, with the features' correlations accounted
for (MANOVA for the means, a Satterthwaite-matched sum for the variances).
"""

import numpy as np
import pandas as pd
from scipy import stats

from ..table._checks import is_numeric_column

__all__ = ["design_matrix", "left_tail_of_sum", "site_tests", "wilks_left_tail"]


def design_matrix(frame, columns):
    """Intercept and ``columns``: numeric ones standardized, others one-hot."""
    blocks = [np.ones((len(frame), 1))]
    for name in columns:
        col = frame[name]
        if is_numeric_column(col) and col.nunique() > 2:
            x = col.to_numpy(dtype=float)
            blocks.append(((x - x.mean()) / (x.std() or 1.0))[:, None])
        else:
            blocks.append(
                pd.get_dummies(col.astype(str), drop_first=True, dtype=float).to_numpy()
            )
    return np.hstack(blocks)


def site_tests(values, sites, design):
    """ANCOVA F of the site term and Bartlett's statistic of the residuals.

    Returns their left-tail probabilities: how likely so *little* difference
    between sites is under random sampling.
    """
    labels, codes = np.unique(sites, return_inverse=True)
    k, n = labels.size, len(values)
    dummies = np.eye(k)[codes][:, 1:]
    full = np.hstack([design, dummies])
    p_full = np.linalg.matrix_rank(full)
    beta_r = np.linalg.lstsq(design, values, rcond=None)[0]
    beta_f = np.linalg.lstsq(full, values, rcond=None)[0]
    resid_f = values - full @ beta_f
    rss_r = ((values - design @ beta_r) ** 2).sum(axis=0)
    rss_f = (resid_f**2).sum(axis=0)
    df1, df2 = k - 1, n - p_full
    with np.errstate(divide="ignore", invalid="ignore"):
        F = np.maximum(rss_r - rss_f, 0.0) / df1 / (rss_f / df2)
    p_mean = stats.f.cdf(F, df1, df2)
    # Bartlett on the residuals of the full model, per site
    nk = np.bincount(codes)
    var = np.vstack(
        [resid_f[codes == s].var(axis=0, ddof=1) for s in range(k)]
    )  # sites x features
    pooled = ((nk[:, None] - 1) * var).sum(axis=0) / (n - k)
    with np.errstate(divide="ignore", invalid="ignore"):
        num = (n - k) * np.log(pooled) - ((nk[:, None] - 1) * np.log(var)).sum(axis=0)
        c = 1 + (np.sum(1 / (nk - 1)) - 1 / (n - k)) / (3 * (k - 1))
        T = num / c
    p_var = stats.chi2.cdf(T, k - 1)
    return F, p_mean, T, p_var, resid_f


def wilks_left_tail(values, sites, design):
    """Left tail of the MANOVA test of the site term (Wilks, Bartlett's chi2).

    The features are standardized and, when there are more of them than half
    the residual degrees of freedom, projected on the leading principal
    axes of the within-site residuals, so that correlated features count as
    what they are. Returns (statistic, degrees of freedom, P(so small)).
    """
    values = (values - values.mean(axis=0)) / values.std(axis=0)
    labels, codes = np.unique(sites, return_inverse=True)
    k, n = labels.size, len(values)
    full = np.hstack([design, np.eye(k)[codes][:, 1:]])
    nu = n - np.linalg.matrix_rank(full)
    resid = values - full @ np.linalg.lstsq(full, values, rcond=None)[0]
    reduced = values - design @ np.linalg.lstsq(design, values, rcond=None)[0]
    within = resid.T @ resid
    evals, evecs = np.linalg.eigh(within)
    d = int(min((evals > evals.max() * 1e-10).sum(), max(1, nu // 2)))
    axes = evecs[:, ::-1][:, :d]
    _, log_w = np.linalg.slogdet(axes.T @ within @ axes)
    _, log_t = np.linalg.slogdet(axes.T @ (reduced.T @ reduced) @ axes)
    stat = max(-(nu - (d - k + 2) / 2) * (log_w - log_t), 0.0)
    df = d * (k - 1)
    return float(stat), df, float(stats.chi2.cdf(stat, df))


def left_tail_of_sum(total, resid, df, power):
    """P(sum <= total) for a sum of chi-square(df) statistics of features.

    Each feature's statistic is ~ chi-square(``df``); correlated features are
    not independent draws, so the sum is matched to a scaled chi-square
    (Satterthwaite) with the features' residual correlations ``rho``:
    covariance of two statistics ``2 df rho**power`` (``power`` 2 for the
    means, 4 for the variances).
    """
    m = resid.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.nan_to_num(np.corrcoef(resid, rowvar=False)).reshape(m, m)
    np.fill_diagonal(rho, 1.0)
    mean, var = m * df, 2.0 * df * float((np.abs(rho) ** power).sum())
    scale, nu = var / (2 * mean), 2 * mean**2 / var
    return float(stats.chi2.cdf(total / scale, nu))
