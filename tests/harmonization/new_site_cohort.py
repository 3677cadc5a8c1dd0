"""The simulated cohort of the new-site tests (``unseen_site="estimate_prior*"``).

One builder for ``test_new_site_prior.py`` and ``test_new_site_prior_cov.py``;
:data:`PRIOR` and :data:`PRIOR_COV` are their two settings.
"""

import numpy as np
import pandas as pd

N_FEATURES = 30

#: ``"estimate_prior"``'s cohort: eight training sites, a new one of mean
#: age 70, independent noise.
PRIOR = {"n_train_sites": 8, "new_age": 70.0}

#: ``"estimate_prior_cov"``'s cohort: ten training sites, a new one of mean
#: age 80, two noise factors common to the features.
PRIOR_COV = {"n_train_sites": 10, "new_age": 80.0, "n_common": 2}


def new_site_cohort(seed=0, *, n_train_sites, new_age, n_common=0, new_scale=1.0,
                    scale_spread=0.0):
    """Training sites of mean ages 30-60, a new one of mean age ``new_age``.

    Every feature is ``2 + beta * age + gamma_site + noise``: the sites'
    locations lie in a two-dimensional subspace (two scanner factors) plus a
    little independent noise, the age effect ``beta`` is drawn independently
    of it. The within-site noise has ``n_common`` factors common to the
    features (they move together, as cortical thicknesses do) on top of an
    independent part. Training sites' mean ages spread evenly from 30 to 60
    (40 rows each), the new site ``s{n_train_sites}`` has 30 rows. The new
    site's noise is multiplied by ``new_scale`` on the first half of the
    features, each training site's by ``exp(scale_spread * N(0, 1))`` per
    feature (drawn from a generator of its own, so that the other draws do
    not depend on it; with ``n_common=0`` no draw is spent on common factors).

    Returns
    -------
    X : pandas.DataFrame
        Features ``f0``... and ``site``.
    ages : ndarray
    beta : ndarray of shape (n_features,)
    truth : ndarray of shape (n_features,)
        The new site's true location, in data units, relative to the
        row-weighted mean of the training sites' (as ComBat's grand mean is).
    noise_cov : ndarray of shape (n_features, n_features)
        The within-site noise covariance (before the scales).
    """
    rng = np.random.default_rng(seed)
    scales = np.exp(scale_spread * np.random.default_rng(seed + 100).normal(
        size=(n_train_sites, N_FEATURES)))
    beta = rng.normal(0.0, 0.06, N_FEATURES)
    factors = rng.normal(0.0, 1.0, (2, N_FEATURES))
    common = rng.normal(0.0, 1.0, (n_common, N_FEATURES))
    means = [*np.linspace(30, 60, n_train_sites), new_age]
    rows, sites, ages, gammas, counts = [], [], [], [], []
    for k, mean_age in enumerate(means):
        n = 40 if k < n_train_sites else 30
        age = rng.normal(mean_age, 6.0, n)
        gamma = rng.normal(0.0, 0.8, 2) @ factors + rng.normal(0, 0.05, N_FEATURES)
        noise = (rng.normal(0.0, 1.0, (n, n_common)) @ common
                 + rng.normal(0.0, 1.0, (n, N_FEATURES)))
        if k == n_train_sites:
            noise[:, : N_FEATURES // 2] *= new_scale
        else:
            noise *= scales[k]
        rows.append(2.0 + age[:, None] * beta + gamma + noise)
        sites += [f"s{k}"] * n
        ages.append(age)
        gammas.append(gamma)
        counts.append(n)
    X = pd.DataFrame(np.vstack(rows), columns=[f"f{j}" for j in range(N_FEATURES)])
    X.index = [f"sub{i:03d}" for i in range(len(X))]
    X["site"] = sites
    weights = np.array(counts[:-1]) / sum(counts[:-1])
    truth = gammas[-1] - weights @ np.array(gammas[:-1])
    return (X, np.concatenate(ages), beta, truth,
            common.T @ common + np.eye(N_FEATURES))
