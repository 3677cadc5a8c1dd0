"""ComBat without empirical Bayes in exact rational arithmetic (a test reference).

Without EB, ComBat's output for a row of site ``i`` is

    out = M + (r - mean_i(r)) * sqrt(var_pooled / var_i(r)),   r = x - M,

with ``M`` the grand mean plus the covariate effects of the least-squares fit
on site indicators and covariates, ``var_pooled`` the mean squared residual and
``var_i`` the variance (ddof=1) of the site's residuals. Everything but the one
square root is rational: it is computed with :class:`fractions.Fraction`
(exact), the square root with 50-digit :mod:`decimal`. Small tables only.
"""

from decimal import Decimal, getcontext
from fractions import Fraction

import numpy as np


def _solve(a, b):
    """Exact Gauss-Jordan solution of ``a x = b`` (lists of Fractions)."""
    n = len(a)
    m = [row[:] + [bb] for row, bb in zip(a, b)]
    for c in range(n):
        pivot = next(r for r in range(c, n) if m[r][c] != 0)
        m[c], m[pivot] = m[pivot], m[c]
        inv = 1 / m[c][c]
        m[c] = [v * inv for v in m[c]]
        for r in range(n):
            if r != c and m[r][c] != 0:
                f = m[r][c]
                m[r] = [vr - f * vc for vr, vc in zip(m[r], m[c])]
    return [m[r][n] for r in range(n)]


def _sqrt(q):
    """Square root of a Fraction to 50 significant digits."""
    return (Decimal(q.numerator) / Decimal(q.denominator)).sqrt()


def exact_combat(data, sites, covariates):
    """Exact ComBat (no EB, location and scale) of ``data`` (n x p floats).

    Parameters
    ----------
    data : ndarray of shape (n, p)
    sites : array-like of shape (n,)
    covariates : ndarray of shape (n, k)
        Numeric covariate design columns.

    Returns
    -------
    ndarray of shape (n, p)
        The harmonized data rounded once to float64.
    """
    getcontext().prec = 50
    labels = sorted(set(sites))
    n, p = data.shape
    code = [labels.index(s) for s in sites]
    rows = []
    for i in range(n):
        onehot = [Fraction(int(code[i] == k)) for k in range(len(labels))]
        rows.append(onehot + [Fraction(float(v)) for v in covariates[i]])
    k_all = len(rows[0])
    gram = [
        [sum(r[a] * r[b] for r in rows) for b in range(k_all)] for a in range(k_all)
    ]
    sizes = [sum(1 for c in code if c == k) for k in range(len(labels))]
    out = np.empty((n, p))
    for j in range(p):
        y = [Fraction(float(v)) for v in data[:, j]]
        rhs = [sum(r[a] * yy for r, yy in zip(rows, y)) for a in range(k_all)]
        beta = _solve(gram, rhs)
        n_sites = len(labels)
        grand = sum(sizes[k] * beta[k] for k in range(n_sites)) / n
        n_cov = k_all - n_sites
        model = [
            grand + sum(r[n_sites + c] * beta[n_sites + c] for c in range(n_cov))
            for r in rows
        ]
        fitted = [sum(r[a] * beta[a] for a in range(k_all)) for r in rows]
        var_pooled = sum((yy - f) ** 2 for yy, f in zip(y, fitted)) / n
        resid = [yy - m for yy, m in zip(y, model)]
        for k in range(n_sites):
            idx = [i for i in range(n) if code[i] == k]
            mean = sum(resid[i] for i in idx) / len(idx)
            var = sum((resid[i] - mean) ** 2 for i in idx) / (len(idx) - 1)
            ratio = _sqrt(var_pooled / var)
            for i in idx:
                centred = resid[i] - mean
                value = Decimal(model[i].numerator) / Decimal(model[i].denominator)
                value += (
                    Decimal(centred.numerator) / Decimal(centred.denominator) * ratio
                )
                out[i, j] = float(value)
    return out
