"""Per-feature linear mixed model of longitudinal ComBat (a subject random intercept).

The model of longCombat (Beer et al. 2020): for each feature, a linear mixed
model with fixed effects (intercept, covariates, site indicators, first site
the reference) and a random intercept per subject, fitted by REML with
statsmodels' :class:`~statsmodels.regression.mixed_linear_model.MixedLM`.
"""

import warnings
from dataclasses import dataclass

import numpy as np

from ..exceptions import MedprepWarning, plain

__all__ = ["MixedFit", "fit_mixed_models"]


@dataclass(frozen=True, eq=False)
class MixedFit:
    """Fixed and random effects of the per-feature mixed models.

    Attributes
    ----------
    intercept : ndarray of shape (n_features,)
        Intercept (at the reference site, covariates at zero).
    site_effect : ndarray of shape (n_sites, n_features)
        Fixed effect of each site (0 at the reference, the first site).
    coef_cov : ndarray of shape (n_cov_columns, n_features)
        Fixed effects of the covariate design columns.
    sigma2 : ndarray of shape (n_features,)
        Residual (within-subject) variance of the mixed model.
    tau2 : ndarray of shape (n_features,)
        Variance of the subject random intercept.
    subject_effect : ndarray of shape (n_subjects, n_features)
        Predicted random intercept (BLUP) of each training subject.
    """

    intercept: np.ndarray
    site_effect: np.ndarray
    coef_cov: np.ndarray
    sigma2: np.ndarray
    tau2: np.ndarray
    subject_effect: np.ndarray


def fit_mixed_models(values, site_codes, n_sites, cov_design, subject_codes,
                     n_subjects, feature_names):
    """Fit one REML mixed model per feature (statsmodels MixedLM).

    Parameters
    ----------
    values : ndarray of shape (n_rows, n_features)
        The features (no NaN).
    site_codes : ndarray of int of shape (n_rows,)
        Site of each row (0 the reference site).
    n_sites : int
        Number of sites.
    cov_design : ndarray of shape (n_rows, n_cov_columns)
        Covariate design columns (no intercept).
    subject_codes : ndarray of int of shape (n_rows,)
        Subject of each row.
    n_subjects : int
        Number of subjects.
    feature_names : list of str
        For the warnings.

    Returns
    -------
    MixedFit
    """
    from statsmodels.regression.mixed_linear_model import MixedLM

    n_rows, n_features = values.shape
    onehot = np.zeros((n_rows, n_sites - 1))
    rows = np.flatnonzero(site_codes > 0)
    onehot[rows, site_codes[rows] - 1] = 1.0
    exog = np.column_stack([np.ones(n_rows), cov_design, onehot])
    p_cov = cov_design.shape[1]
    intercept = np.empty(n_features)
    site_effect = np.zeros((n_sites, n_features))
    coef_cov = np.empty((p_cov, n_features))
    sigma2 = np.empty(n_features)
    tau2 = np.empty(n_features)
    subject_effect = np.empty((n_subjects, n_features))
    for j in range(n_features):
        model = MixedLM(values[:, j], exog, groups=subject_codes)
        # a random-intercept variance of 0 (on the boundary) is a valid fit
        # (lme4's "singular fit"): the model is then ComBat's for that feature;
        # the Hessian gives only standard errors, which are not used
        result, caught = _fit(model, {})
        if caught or not result.converged:
            # the gradient optimizers (statsmodels' default, then its retries)
            # stall when the random-intercept variance is near the boundary;
            # Powell's derivative-free method does not
            result, caught = _fit(model, {"method": "powell"})
        if caught or not result.converged:
            why = caught[0].message if caught else "no convergence"
            warnings.warn(
                f"LongitudinalComBatHarmonizer: the mixed model of feature "
                f"{plain(feature_names[j])!r} warned: {why}",
                MedprepWarning,
                stacklevel=3,
            )
        fe = np.asarray(result.fe_params, dtype=float)
        intercept[j] = fe[0]
        coef_cov[:, j] = fe[1 : 1 + p_cov]
        site_effect[1:, j] = fe[1 + p_cov :]
        sigma2[j] = float(result.scale)
        tau2[j] = float(np.asarray(result.cov_re)[0, 0])
        effects = result.random_effects
        subject_effect[:, j] = [
            float(np.asarray(effects[s])[0]) for s in range(n_subjects)
        ]
    return MixedFit(intercept, site_effect, coef_cov, sigma2, tau2, subject_effect)


def _fit(model, options):
    """REML fit of one mixed model, with the warnings it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = model.fit(reml=True, **options)
    return result, [w for w in caught if not _benign(w)]


def _benign(caught):
    text = str(caught.message)
    return "boundary" in text or "Hessian" in text
