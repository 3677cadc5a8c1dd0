"""Interaction terms between covariates (age x sex), as neuroCombat users add them."""

import contextlib
import io
import warnings

import numpy as np
import pytest

from sklearn_medprep import ComBatHarmonizer, CovBatHarmonizer
from sklearn_medprep.datasets import make_multisite_features
from sklearn_medprep.exceptions import SubjectTableError

P = 6
FEATS = [f"f{j:03d}" for j in range(P)]


@pytest.fixture
def df():
    data = make_multisite_features(n_subjects=120, n_features=P, random_state=5)
    data["male"] = (data["sex"] == "M").astype(float)
    data["age_x_male"] = data["age"] * data["male"]
    # an age slope that differs by sex, on every feature
    data[FEATS] += (0.05 * data["age_x_male"]).to_numpy()[:, None]
    return data


@pytest.mark.parametrize("term", [("age", "sex"), "age:sex", "age*sex"])
def test_interaction_equals_the_hand_made_product_column(df, term):
    ours = ComBatHarmonizer(covariates=["age", "sex"], interactions=[term])
    out = ours.fit_transform(df[[*FEATS, "site", "age", "sex"]])
    by_hand = ComBatHarmonizer(covariates=["age", "male", "age_x_male"])
    ref = by_hand.fit_transform(df[[*FEATS, "site", "age", "male", "age_x_male"]])
    np.testing.assert_allclose(out.to_numpy(), ref.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.coef_, by_hand.coef_, rtol=1e-10, atol=1e-12)
    # and it is a different model than without the interaction
    plain = ComBatHarmonizer(covariates=["age", "sex"]).fit_transform(
        df[[*FEATS, "site", "age", "sex"]]
    )
    assert np.abs(plain.to_numpy() - out.to_numpy()).max() > 1e-3
    # transform of new rows builds the same columns
    rows = df.iloc[:7]
    np.testing.assert_allclose(
        ours.transform(rows[[*FEATS, "site", "age", "sex"]]).to_numpy(),
        by_hand.transform(rows[[*FEATS, "site", "age", "male", "age_x_male"]]),
        rtol=1e-12,
    )


def test_interaction_matches_neuroharmonize_with_a_product_column(df):
    nh = pytest.importorskip("neuroHarmonize")
    covars = df[["site", "age", "male", "age_x_male"]].rename(columns={"site": "SITE"})
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, theirs = nh.harmonizationLearn(df[FEATS].to_numpy(), covars)
    ours = ComBatHarmonizer(covariates=["age", "male"], interactions=[("age", "male")])
    out = ours.fit_transform(df[[*FEATS, "site", "age", "male"]])
    # neuroHarmonize rounds the covariates to float32 (~1e-7)
    np.testing.assert_allclose(out.to_numpy(), theirs, rtol=1e-6, atol=1e-6)


def test_interaction_errors_name_the_column(df):
    X = df[[*FEATS, "site", "age", "sex"]]
    with pytest.raises(SubjectTableError, match="not a covariate") as info:
        ComBatHarmonizer(covariates=["age"], interactions=[("age", "sex")]).fit(X)
    assert info.value.column == "sex"
    with pytest.raises(SubjectTableError, match="smooth"):
        ComBatHarmonizer(
            covariates=["age", "sex"], smooth_terms=["age"], interactions=["age:sex"]
        ).fit(X)
    with pytest.raises(ValueError, match="two covariates"):
        ComBatHarmonizer(covariates=["age", "sex"], interactions=["age"]).fit(X)
    # an interaction already in the design is named in the singular error
    X2 = df[[*FEATS, "site", "age", "male", "age_x_male"]]
    with pytest.raises(ValueError, match="'age:male'"):
        ComBatHarmonizer(
            covariates=["age", "male", "age_x_male"], interactions=["age:male"]
        ).fit(X2)


def test_covbat_takes_interactions(df):
    X = df[[*FEATS, "site", "age", "sex"]]
    out = CovBatHarmonizer(
        covariates=["age", "sex"], interactions=["age:sex"], n_components=2
    ).fit_transform(X)
    assert out.shape == (len(df), P) and np.isfinite(out.to_numpy()).all()
