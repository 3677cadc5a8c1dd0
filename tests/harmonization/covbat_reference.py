"""CovBat reference for the tests: the algorithm (ddof=1 prior), restated in numpy.

Written from Chen et al. (2022) and the authors' Python reference
(github.com/andy1764/CovBat_Harmonization, Python/covbat.py, Artistic-2.0;
no code copied): parametric empirical-Bayes ComBat (Johnson et al. 2007) whose
residuals (the data harmonized, minus the modelled mean) are standardized
(``StandardScaler``), decomposed by ``PCA()``; the scores of the first
components, the fewest whose cumulative explained variance ratio (each ratio
rounded to 4 decimals) exceeds ``pct_var`` (or ``n_pc`` of them), are
harmonized by ComBat without empirical Bayes; every score is projected back,
un-standardized, and the modelled mean added. Dense, per-site loops: small
tables only. Plain ComBat with the site one-hot design and numeric covariates.
The empirical-Bayes prior variance ``t2`` is ``ddof=1`` (as the authors' R
package and neuroHarmonize; their Python uses ``ddof=0``): this is the
library's definition, not their Python as published. The comparison with their
own code, run as it stands and with that line at ``ddof=1``, is
``test_covbat_authors.py``.
"""

import numpy as np
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler


def _standardize(data, batch, covariates):
    levels = sorted(set(batch))
    onehot = np.column_stack([(batch == lv).astype(float) for lv in levels])
    design = np.hstack([onehot, covariates])
    beta = np.linalg.inv(design.T @ design) @ design.T @ data
    sizes = onehot.sum(axis=0)
    grand = (sizes / sizes.sum()) @ beta[: len(levels)]
    var_pooled = ((data - design @ beta) ** 2).mean(axis=0)
    stand_mean = grand + covariates @ beta[len(levels) :]
    s = (data - stand_mean) / np.sqrt(var_pooled)
    return levels, s, stand_mean, var_pooled


def _it_sol(sdat, g_hat, d_hat, g_bar, t2, a, b, conv=1e-4):
    n = sdat.shape[0]
    g_old, d_old = g_hat.copy(), d_hat.copy()
    while True:
        g_new = (t2 * n * g_hat + d_old * g_bar) / (t2 * n + d_old)
        sum2 = ((sdat - g_new) ** 2).sum(axis=0)
        d_new = (0.5 * sum2 + b) / (n / 2.0 + a - 1.0)
        change = max(
            (np.abs(g_new - g_old) / g_old).max(), (np.abs(d_new - d_old) / d_old).max()
        )
        g_old, d_old = g_new, d_new
        if change <= conv:
            return g_new, d_new


def reference_combat_residuals(data, batch, covariates, eb=True):
    """Harmonized data minus the modelled mean, and that mean."""
    levels, s, stand_mean, var_pooled = _standardize(data, batch, covariates)
    out = np.empty_like(s)
    for lv in levels:
        rows = batch == lv
        sdat = s[rows]
        g_hat = sdat.mean(axis=0)
        d_hat = sdat.var(axis=0, ddof=1)
        if eb:
            g_bar, t2 = g_hat.mean(), g_hat.var(ddof=1)
            m, v = d_hat.mean(), d_hat.var(ddof=1)
            a, b = (2 * v + m**2) / v, (m * v + m**3) / v
            g_hat, d_hat = _it_sol(sdat, g_hat, d_hat, g_bar, t2, a, b)
        out[rows] = (sdat - g_hat) / np.sqrt(d_hat)
    return out * np.sqrt(var_pooled), stand_mean


def reference_covbat(data, batch, covariates, pct_var=0.95, n_pc=0):
    """CovBat of ``data`` (n x p); returns the harmonized (n x p) array."""
    batch = np.asarray(batch)
    resid, stand_mean = reference_combat_residuals(data, batch, covariates)
    scaler = StandardScaler()
    z = scaler.fit_transform(resid)
    pca = PCA()
    scores = pca.fit_transform(z)
    var_exp = np.cumsum(np.round(pca.explained_variance_ratio_, decimals=4))
    npc = int(np.min(np.where(var_exp > pct_var))) + 1
    if n_pc > 0:
        npc = n_pc
    adjusted, mean = reference_combat_residuals(
        scores[:, :npc], batch, np.empty((len(batch), 0)), eb=False
    )
    scores[:, :npc] = adjusted + mean
    return scaler.inverse_transform(scores @ pca.components_) + stand_mean
