import numpy as np
import pandas as pd
import pytest

from sklearn_medprep.datasets import make_multisite_features


def test_shape_columns_and_types():
    df = make_multisite_features(n_subjects=50, n_features=7, n_sites=4, random_state=0)
    assert df.shape == (50, 11)
    assert list(df.columns[:7]) == [f"f{j:03d}" for j in range(7)]
    assert set(df["site"]) == {"site_0", "site_1", "site_2", "site_3"}
    assert set(df["sex"]) <= {"F", "M"} and set(df["y"]) <= {0, 1}
    assert df["age"].dtype == np.float64
    assert (df["site"].value_counts() >= 2).all()


def test_deterministic_and_seed_dependent():
    a = make_multisite_features(random_state=3)
    b = make_multisite_features(random_state=3)
    c = make_multisite_features(random_state=4)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_site_sizes_and_ground_truth():
    df, eff = make_multisite_features(
        n_features=6, site_sizes=[40, 5, 25], random_state=1, return_effects=True
    )
    assert df["site"].value_counts().to_dict() == {
        "site_0": 40,
        "site_1": 5,
        "site_2": 25,
    }
    assert eff.gamma.shape == eff.delta.shape == (3, 6)
    assert (eff.delta > 0).all().all()
    # with the site effects switched off, the table is the ground-truth clean one
    feats = eff.features
    no_site = make_multisite_features(
        n_features=6,
        site_sizes=[40, 5, 25],
        random_state=1,
        site_effect=0.0,
        site_scale=0.0,
        return_effects=True,
    )[0]
    np.testing.assert_allclose(no_site[feats].to_numpy(), eff.clean.to_numpy())


def test_site_effect_visible():
    df = make_multisite_features(
        n_subjects=300, n_features=10, site_effect=2.0, random_state=0
    )
    feats = [c for c in df if c.startswith("f")]
    spread = df.groupby("site")[feats].mean().std().mean()
    small = make_multisite_features(
        n_subjects=300, n_features=10, site_effect=0.0, site_scale=0.0, random_state=0
    )
    assert spread > 3 * small.groupby("site")[feats].mean().std().mean()


def test_bad_arguments():
    with pytest.raises(ValueError, match="too small"):
        make_multisite_features(n_subjects=5, n_sites=3)
    with pytest.raises(ValueError, match="site_sizes"):
        make_multisite_features(site_sizes=[3, 0])
