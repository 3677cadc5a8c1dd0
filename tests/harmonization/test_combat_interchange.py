"""neuroHarmonize model interchange: outputs equal harmonizationApply's."""

import contextlib
import io
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_medprep import ComBatHarmonizer
from sklearn_medprep.datasets import make_multisite_features

nh = pytest.importorskip("neuroHarmonize")

P = 6
FEATS = [f"f{j:03d}" for j in range(P)]


@contextlib.contextmanager
def _quiet():
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture
def df():
    data = make_multisite_features(n_subjects=90, n_features=P, random_state=3)
    data["male"] = (data["sex"] == "M").astype(float)
    return data.sample(frac=1.0, random_state=0)  # every site in both halves


def _nh_learn(train, **kw):
    covars = train[["site", "age", "male"]].rename(columns={"site": "SITE"})
    with _quiet():
        model, _ = nh.harmonizationLearn(train[FEATS].to_numpy(), covars, **kw)
    return model


def _nh_apply(model, rows):
    covars = rows[["site", "age", "male"]].rename(columns={"site": "SITE"})
    with _quiet():
        return nh.harmonizationApply(rows[FEATS].to_numpy(), covars, model)


@pytest.mark.parametrize("kw", [{}, {"eb": False}, {"ref_batch": "site_1"}])
def test_from_neuroharmonize_equals_harmonization_apply(df, tmp_path, kw):
    train, test = df.iloc[:60], df.iloc[60:]
    model = _nh_learn(train, **kw)
    path = tmp_path / "model.pkl"
    with _quiet():
        nh.saveHarmonizationModel(model, str(path))
        model = nh.loadHarmonizationModel(str(path))
    est = ComBatHarmonizer.from_neuroharmonize(model, features=FEATS, site="site")
    assert est.covariates_ == ["age", "male"]
    X = test[[*FEATS, "site", "age", "male"]]
    ours = est.transform(X)
    # harmonizationApply rounds the covariates to float32 in its design (its
    # own error vs exact ComBat, ~1e-7); ours applies the model in float64
    np.testing.assert_allclose(ours.to_numpy(), _nh_apply(model, test), rtol=1e-6)
    # inside a Pipeline (frozen: the lab's model is not refitted), row by row
    pipe = make_pipeline(FrozenEstimator(est), StandardScaler()).fit(X)
    assert pipe.transform(X.iloc[[3]]).shape == (1, P)
    np.testing.assert_allclose(est.transform(X.iloc[[3]]), ours.iloc[[3]])


@pytest.mark.parametrize("y", [None, "dx"])
def test_to_neuroharmonize_is_applied_by_neuroharmonize(df, y):
    train, test = df.iloc[:60], df.iloc[60:]
    X = train[[*FEATS, "site", "age", "male"]]
    target = None if y is None else train["y"]
    est = ComBatHarmonizer(covariates=["age", "male"], target_scale="centre")
    est.fit(X, target)
    model = est.to_neuroharmonize()
    model = pickle.loads(pickle.dumps(model))  # what saveHarmonizationModel does
    theirs = _nh_apply(model, test)
    ours = est.transform(test[[*FEATS, "site", "age", "male"]]).to_numpy()
    # neuroHarmonize rounds the covariates to float32 in its design
    np.testing.assert_allclose(theirs, ours, rtol=1e-6)
    assert np.abs(ours - test[FEATS].to_numpy()).max() > 0.1
    # and back again
    back = ComBatHarmonizer.from_neuroharmonize(model, features=FEATS)
    np.testing.assert_allclose(
        back.transform(test[[*FEATS, "site", "age", "male"]]), ours, rtol=1e-12
    )


def test_untranslatable_models_are_refused(df):
    protected = ComBatHarmonizer(covariates=["age", "male"], target_scale="project")
    protected.fit(
        df[[*FEATS, "site", "age", "male"]], df["y"]
    )
    with pytest.raises(ValueError, match="target_scale='centre'"):
        protected.to_neuroharmonize()
    X = df[[*FEATS, "site", "age", "sex"]]
    est = ComBatHarmonizer(covariates=["age", "sex"]).fit(X)
    with pytest.raises(ValueError, match="categorical covariates"):
        est.to_neuroharmonize()
    with pytest.raises(TypeError, match="harmonizationLearn"):
        ComBatHarmonizer.from_neuroharmonize({"a": 1})
    model = _nh_learn(df)
    model["smooth_model"]["perform_smoothing"] = True
    with pytest.raises(ValueError, match="smooth_terms"):
        ComBatHarmonizer.from_neuroharmonize(model, features=FEATS)


def test_column_names_default_from_the_model(df):
    model = _nh_learn(df)
    est = ComBatHarmonizer.from_neuroharmonize(model)
    assert list(est.features_) == [f"x{j}" for j in range(P)]
    X = pd.DataFrame(df[FEATS].to_numpy(), columns=est.features_).assign(
        site=df["site"].to_numpy(), age=df["age"].to_numpy(), male=df["male"].to_numpy()
    )
    np.testing.assert_allclose(est.transform(X), _nh_apply(model, df), rtol=1e-6)
