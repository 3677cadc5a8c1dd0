"""Accuracy of ComBatHarmonizer against an exact (rational) computation.

Without empirical Bayes ComBat has a closed form whose only irrational step is
one square root; ``tests/harmonization/combat_exact.py`` computes it with fractions and
50-digit decimals. Ours must agree to rounding error (~1e-14 on values ~20);
neuroHarmonize, where installed, is further away (~1e-7: its own numerics).
"""

import contextlib
import io
import warnings

import numpy as np
import pandas as pd
import pytest
from combat_exact import exact_combat

from sklearn_medprep import ComBatHarmonizer


def accuracy_table(seed=0, n_per_site=10, p=4):
    rng = np.random.default_rng(seed)
    sites = np.repeat(["a", "b", "c"], n_per_site)
    n = sites.size
    age = rng.uniform(20, 80, n).round(1)
    shift = (np.arange(n) // n_per_site)[:, None] * np.array([1, -1, 0.5, 2])[:p]
    data = (
        rng.standard_normal((n, p)) * np.array([1, 2, 0.5, 3])[:p]
        + 10
        + shift
        + 0.05 * age[:, None]
    )
    return data, sites, age


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equal_to_exact_combat_to_rounding_error(seed):
    data, sites, age = accuracy_table(seed)
    exact = exact_combat(data, sites, age[:, None])
    df = pd.DataFrame(data, columns=[f"f{j}" for j in range(data.shape[1])])
    df["site"], df["age"] = sites, age
    ours = ComBatHarmonizer(covariates=["age"], eb=False).fit_transform(df)
    err = np.abs(ours.to_numpy() - exact).max()
    assert err < 1e-12 * np.abs(exact).max()
    # the reference is not trivially equal to the input
    assert np.abs(exact - data).max() > 0.1


def test_neuroharmonize_is_further_from_exact_than_ours():
    pytest.importorskip("neuroHarmonize")
    from neuroHarmonize import harmonizationLearn

    data, sites, age = accuracy_table(0)
    exact = exact_combat(data, sites, age[:, None])
    covars = pd.DataFrame({"SITE": sites, "age": age})
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy.matrix inside neuroHarmonize
        _, theirs = harmonizationLearn(data, covars, eb=False)
    df = pd.DataFrame(data, columns=[f"f{j}" for j in range(data.shape[1])])
    df["site"], df["age"] = sites, age
    ours = ComBatHarmonizer(covariates=["age"], eb=False).fit_transform(df)
    err_ours = np.abs(ours.to_numpy() - exact).max()
    err_theirs = np.abs(theirs - exact).max()
    assert err_theirs < 1e-5  # the same method
    assert err_ours < err_theirs
