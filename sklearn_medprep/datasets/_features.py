"""Synthetic multi-site feature tables with known site effects."""

import numbers

import numpy as np
import pandas as pd
from sklearn.utils import Bunch, check_random_state

__all__ = ["make_multisite_features"]


def make_multisite_features(
    n_subjects=200,
    n_features=20,
    n_sites=3,
    *,
    site_sizes=None,
    site_effect=1.0,
    site_scale=0.3,
    covariate_effect=0.5,
    label_effect=0.5,
    noise=1.0,
    random_state=None,
    return_effects=False,
):
    """Generate a multi-site table of numeric features with known site effects.

    Each feature ``f`` of subject ``i`` at site ``s`` is::

        x[i, f] = mu[f] + beta_age[f] * (age[i] - 50) / 10 + beta_sex[f] * male[i]
                  + beta_y[f] * y[i] + gamma[s, f] + delta[s, f] * noise * e[i, f]

    with ``e`` standard normal: ``gamma`` is the additive and ``delta`` the
    multiplicative site effect that ComBat estimates and removes, while the age,
    sex and label effects are biology to keep. The sites differ in size (by
    default) and in mean age, so that site and age are confounded as in real
    studies.

    Parameters
    ----------
    n_subjects : int, default=200
        Number of rows; ignored when ``site_sizes`` is given.
    n_features : int, default=20
        Number of feature columns ``f000``, ``f001``, ...
    n_sites : int, default=3
        Number of sites ``site_0``, ``site_1``, ...; ignored when ``site_sizes``
        is given.
    site_sizes : sequence of int or None, default=None
        Number of subjects of each site. ``None`` draws unequal sizes (each at
        least 2) that sum to ``n_subjects``.
    site_effect : float, default=1.0
        Standard deviation of the additive site effects ``gamma``.
    site_scale : float, default=0.3
        Standard deviation of ``log(delta)``, the multiplicative site effects.
    covariate_effect : float, default=0.5
        Standard deviation of the per-feature age and sex effects.
    label_effect : float, default=0.5
        Standard deviation of the per-feature effect of the label ``y``.
    noise : float, default=1.0
        Standard deviation of the subject-level noise.
    random_state : int, RandomState instance or None, default=None
        Seed; the same seed gives the same table.
    return_effects : bool, default=False
        Also return the ground truth.

    Returns
    -------
    data : pandas.DataFrame of shape (n_subjects, n_features + 4)
        Feature columns, then ``site`` (str), ``age`` (float), ``sex``
        (``"F"``/``"M"``) and ``y`` (0/1).
    effects : sklearn.utils.Bunch
        Only when ``return_effects=True``: ``gamma`` and ``delta`` (DataFrames,
        sites x features), ``mu``, ``beta_age``, ``beta_sex``, ``beta_y`` (Series
        over features), ``clean`` (the features without site effects, a
        DataFrame aligned with ``data``) and ``features`` (the column names).

    Examples
    --------
    >>> from sklearn_medprep.datasets import make_multisite_features
    >>> df, effects = make_multisite_features(
    ...     n_subjects=60, n_features=5, n_sites=3, random_state=0,
    ...     return_effects=True)
    >>> df.shape
    (60, 9)
    >>> sorted(df["site"].unique())
    ['site_0', 'site_1', 'site_2']
    >>> effects.gamma.shape
    (3, 5)
    """
    rng = check_random_state(random_state)
    if site_sizes is None:
        if not isinstance(n_sites, numbers.Integral) or n_sites < 1:
            raise ValueError(f"n_sites must be a positive integer, got {n_sites!r}.")
        if n_subjects < 2 * n_sites:
            raise ValueError(
                f"n_subjects={n_subjects} is too small for {n_sites} sites of at "
                "least 2 subjects."
            )
        weights = rng.dirichlet(np.full(n_sites, 4.0))
        extra = n_subjects - 2 * n_sites
        sizes = 2 + np.floor(weights * extra).astype(int)
        sizes[np.argmax(weights)] += n_subjects - sizes.sum()
    else:
        sizes = np.asarray(site_sizes, dtype=int)
        if sizes.ndim != 1 or sizes.size == 0 or (sizes < 1).any():
            raise ValueError(
                f"site_sizes must be positive integers, got {site_sizes!r}."
            )
        n_sites = sizes.size
    n = int(sizes.sum())
    site_names = [f"site_{k}" for k in range(n_sites)]
    site_idx = np.repeat(np.arange(n_sites), sizes)

    site_age = rng.uniform(35, 65, size=n_sites)
    age = np.clip(site_age[site_idx] + rng.normal(0, 10, size=n), 18, 90).round(1)
    male = rng.random_sample(n) < 0.5
    y = (rng.random_sample(n) < 0.5).astype(int)

    features = [f"f{j:03d}" for j in range(n_features)]
    mu = rng.normal(0, 2, size=n_features)
    beta_age = rng.normal(0, covariate_effect, size=n_features)
    beta_sex = rng.normal(0, covariate_effect, size=n_features)
    beta_y = rng.normal(0, label_effect, size=n_features)
    gamma = rng.normal(0, site_effect, size=(n_sites, n_features))
    delta = np.exp(rng.normal(0, site_scale, size=(n_sites, n_features)))
    eps = rng.normal(0, noise, size=(n, n_features))

    clean = (
        mu
        + np.outer((age - 50) / 10, beta_age)
        + np.outer(male, beta_sex)
        + np.outer(y, beta_y)
    )
    values = clean + gamma[site_idx] + delta[site_idx] * eps
    clean = clean + eps

    data = pd.DataFrame(values, columns=features)
    data["site"] = np.asarray(site_names, dtype=object)[site_idx]
    data["age"] = age
    data["sex"] = np.where(male, "M", "F").astype(object)
    data["y"] = y
    if not return_effects:
        return data
    effects = Bunch(
        gamma=pd.DataFrame(gamma, index=site_names, columns=features),
        delta=pd.DataFrame(delta, index=site_names, columns=features),
        mu=pd.Series(mu, index=features),
        beta_age=pd.Series(beta_age, index=features),
        beta_sex=pd.Series(beta_sex, index=features),
        beta_y=pd.Series(beta_y, index=features),
        clean=pd.DataFrame(clean, index=data.index, columns=features),
        features=features,
    )
    return data, effects
