"""QuantileComBatHarmonizer: ComBat with the site-constant features pooled."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import Ridge
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.tree import DecisionTreeClassifier
from table_contract import check_table_contract

from sklearn_medprep import (
    ComBatHarmonizer,
    QuantileComBatHarmonizer,
    site_predictability,
)
from sklearn_medprep.datasets import make_multisite_features
from sklearn_medprep.exceptions import MedprepWarning
from sklearn_medprep.model_selection import SiteStratifiedKFold

ACQ = ["size_x", "spacing_x"]


def _cohort(n=240, seed=0):
    """Four sites; two acquisition columns constant within sites 0-2.

    At site 3 they take their site's value and, for a fifth of the scans, a
    second one: a skewed two-point distribution whose mean and variance
    ComBat matches to the others' while its values stay apart from them.
    """
    df = make_multisite_features(n, 5, n_sites=4, site_effect=1.5, random_state=seed)
    rng = np.random.default_rng(seed)
    codes = pd.factorize(df["site"], sort=True)[0]
    for j, name in enumerate(ACQ):
        values = np.array([1.0, 1.2, 0.9, 1.1])[codes] * (j + 1)
        rare = (codes == 3) & (rng.random(n) < 0.2)
        df[name] = np.where(rare, values + 0.3, values)
    return df


def _x(df, *drop):
    return df.drop(columns=["y", *drop])


def _grand_mean(fitted, name):
    return fitted.grand_mean_[list(fitted.features_).index(name)]


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MedprepWarning)
        return fn(*args, **kwargs)


def test_harmonize_option_equals_combat_exactly():
    df = _cohort()
    X = _x(df)
    ours = _quiet(QuantileComBatHarmonizer(covariates=["age", "sex"],
                                           site_constant="harmonize",
                                           n_quantiles=None).fit, X)
    ref = _quiet(ComBatHarmonizer(covariates=["age", "sex"]).fit, X)
    assert ours.pooled_features_.size == 0
    np.testing.assert_array_equal(ours.transform(X).to_numpy(),
                                  ref.transform(X).to_numpy())


def test_pool_equals_combat_without_site_constant_features():
    X = _x(_cohort(), *ACQ)
    ours = QuantileComBatHarmonizer(covariates=["age", "sex"],
                                    n_quantiles=None).fit(X)
    ref = ComBatHarmonizer(covariates=["age", "sex"]).fit(X)
    assert ours.pooled_features_.size == 0
    np.testing.assert_array_equal(ours.transform(X).to_numpy(),
                                  ref.transform(X).to_numpy())


def test_pooled_features_at_their_modelled_mean_others_as_combat():
    df = _cohort()
    X = _x(df, "age", "sex")  # no covariates: the modelled mean is the grand mean
    with pytest.warns(MedprepWarning, match=r"2 feature\(s\).*size_x.*spacing_x"):
        ours = QuantileComBatHarmonizer(n_quantiles=None).fit(X)
    ref = _quiet(ComBatHarmonizer().fit, X)
    assert list(ours.pooled_features_) == ACQ
    out, expected = ours.transform(X), ref.transform(X)
    others = [c for c in X.columns if c not in ACQ and c != "site"]
    np.testing.assert_array_equal(out[others].to_numpy(), expected[others].to_numpy())
    # ComBat maps a site where the feature is constant to the grand mean: the
    # value every row gets once pooled
    site0 = (X["site"] == "site_0").to_numpy()
    for name in ACQ:
        target = expected.loc[site0, name].to_numpy()
        np.testing.assert_allclose(target, target[0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(out[name], target[0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(target[0], _grand_mean(ours, name),
                                   rtol=0, atol=1e-12)


def test_removes_the_site_signal_combat_leaves():
    """Held-out rows: the acquisition columns still give the site after ComBat."""
    df = _cohort(n=320)
    X = _x(df, "age", "sex")
    tree = DecisionTreeClassifier(max_depth=3, random_state=0)
    scores = {}
    for name, harmonizer in (("combat", ComBatHarmonizer()),
                             ("ours", QuantileComBatHarmonizer())):
        scores[name] = _quiet(
            site_predictability, X, "site", ACQ, harmonizer=harmonizer,
            n_permutations=0, classifier=tree,
        )
    chance = 1 / 4
    # ComBat's held-out rows: the sites whose acquisition value is constant all
    # land on the grand mean, site 3's two values elsewhere
    assert scores["combat"] > 0.4
    # pooled: one value for every row, so the best a classifier can do is chance
    assert scores["ours"] == pytest.approx(chance, abs=1e-12)


def test_learned_from_the_training_rows_only():
    df = _cohort()
    X = _x(df, "age", "sex")
    train, test = next(SiteStratifiedKFold(3, shuffle=True, random_state=0).split(
        X, groups=X["site"]))
    fitted = _quiet(QuantileComBatHarmonizer().fit, X.iloc[train])
    out = fitted.transform(X.iloc[test])
    # the held-out rows changed beyond recognition: the fit on the training rows
    # and each row's output do not move
    wild = X.iloc[test].copy()
    feats = [c for c in X.columns if c != "site"]
    wild[feats] = wild[feats] * 7.0 + 3.0
    both = pd.concat([X.iloc[train], wild])
    again = _quiet(QuantileComBatHarmonizer().fit, both.iloc[: len(train)])
    np.testing.assert_array_equal(again.transform(X.iloc[test]).to_numpy(),
                                  out.to_numpy())
    # row by row equals the batch (no statistic of the transformed rows is used)
    single = pd.concat([fitted.transform(X.iloc[test[i : i + 1]])
                        for i in range(0, len(test), 7)])
    np.testing.assert_array_equal(single.to_numpy(),
                                  out.iloc[::7].to_numpy())
    # which features are pooled is decided on the training rows: a held-out
    # set where site_3 is constant too changes nothing
    flat = X.iloc[test].assign(size_x=1.0)
    np.testing.assert_array_equal(fitted.transform(flat)["size_x"].to_numpy(),
                                  out["size_x"].to_numpy())


def test_new_site_policies():
    df = _cohort()
    X = _x(df, "age", "sex")
    new = X["site"] == "site_3"
    kwargs = {"unseen_site": "estimate"}
    ours = _quiet(QuantileComBatHarmonizer(**kwargs).fit, X[~new])  # quantiles on
    ref = _quiet(ComBatHarmonizer(**kwargs).fit, X[~new])
    out = _quiet(ours.transform, X[new])
    expected = _quiet(ref.transform, X[new])
    others = [c for c in X.columns if c not in ACQ and c != "site"]
    np.testing.assert_array_equal(out[others].to_numpy(), expected[others].to_numpy())
    for name in ACQ:  # pooled: the grand mean, nothing estimated
        np.testing.assert_allclose(out[name], _grand_mean(ours, name),
                                   rtol=0, atol=1e-12)
    passthrough = _quiet(QuantileComBatHarmonizer(unseen_site="passthrough").fit,
                         X[~new])
    kept = _quiet(passthrough.transform, X[new])
    np.testing.assert_array_equal(kept[ACQ].to_numpy(), X.loc[new, ACQ].to_numpy())
    with pytest.raises(ValueError, match="site_3"):
        _quiet(QuantileComBatHarmonizer().fit, X[~new]).transform(X[new])


def test_nan_cells_stay_nan():
    X = _x(_cohort(), "age", "sex")
    X.loc[X.index[5], "size_x"] = np.nan
    fitted = _quiet(QuantileComBatHarmonizer().fit, X)
    out = fitted.transform(X)
    assert np.isnan(out.loc[X.index[5], "size_x"])
    assert np.isfinite(out["size_x"].drop(index=X.index[5])).all()


def test_in_a_pipeline_with_the_splitter():
    df = _cohort()
    X, y = _x(df), df["y"].to_numpy(dtype=float)
    cv = SiteStratifiedKFold(4, shuffle=True, random_state=0)
    pipe = make_pipeline(
        QuantileComBatHarmonizer(covariates=["sex"]), Ridge(alpha=1.0)
    )
    pred = _quiet(cross_val_predict, pipe, X, y, cv=cv, groups=X["site"])
    manual = np.empty_like(y)
    for train, test in cv.split(X, y, groups=X["site"]):
        h = _quiet(QuantileComBatHarmonizer(covariates=["sex"]).fit,
                   X.iloc[train], y[train])
        model = Ridge(alpha=1.0).fit(h.transform(X.iloc[train]), y[train])
        manual[test] = model.predict(h.transform(X.iloc[test]))
    np.testing.assert_allclose(pred, manual, rtol=0, atol=1e-10)


def test_sklearn_contract_on_tables():
    """The scikit-learn checks that cannot feed a site, redone on a table."""
    df = _cohort()
    X = _x(df)
    h = QuantileComBatHarmonizer(covariates=["age", "sex"])
    with pytest.raises(NotFittedError):
        h.transform(X)
    out = check_table_contract(h, X, df["y"], ignore=(MedprepWarning,))
    assert h.n_features_in_ == X.shape[1]
    assert list(h.feature_names_in_) == list(X.columns)
    assert list(h.get_feature_names_out()) == list(out.columns)


def test_transform_subsets_and_single_rows():
    df = _cohort()
    X = _x(df)
    h = _quiet(QuantileComBatHarmonizer(covariates=["age", "sex"]).fit, X)
    out = h.transform(X)
    np.testing.assert_allclose(h.transform(X.iloc[10:30]).to_numpy(),
                               out.iloc[10:30].to_numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(h.transform(X.iloc[[7]]).to_numpy(),
                               out.iloc[[7]].to_numpy(), rtol=0, atol=1e-12)


def test_parameters_are_validated():
    X = _x(_cohort(), "age", "sex")
    with pytest.raises(ValueError, match="site_constant"):
        QuantileComBatHarmonizer(site_constant="drop").fit(X)
    with pytest.raises(ValueError, match="min_constant_sites"):
        QuantileComBatHarmonizer(min_constant_sites=0).fit(X)
    # a feature constant within fewer sites than asked for is harmonized by ComBat
    h = _quiet(QuantileComBatHarmonizer(min_constant_sites=4).fit, X)
    assert h.pooled_features_.size == 0


def _skewed_cohort(n_per_site=200, n_features=4, seed=0):
    """Three sites with one latent, of equal mean and variance, different shape.

    Site 0 is Gaussian, site 1 right-skewed (a standardized log-normal),
    site 2 left-skewed: ComBat's per-site mean and variance are already
    equal, so it changes almost nothing and the shapes stay apart.
    """
    rng = np.random.default_rng(seed)
    blocks = []
    for site in range(3):
        u = rng.standard_normal((n_per_site, n_features))
        if site:
            x = np.exp(0.9 * u)
            x = (x - np.exp(0.405)) / np.sqrt((np.exp(0.81) - 1) * np.exp(0.81))
            u = x if site == 1 else -x
        block = pd.DataFrame(u, columns=[f"f{j}" for j in range(n_features)])
        block["site"] = f"s{site}"
        blocks.append(block)
    return pd.concat(blocks, ignore_index=True)


def test_quantiles_remove_a_skewed_site_effect_combat_leaves():
    X = _skewed_cohort()
    feats = [c for c in X.columns if c != "site"]
    tree = DecisionTreeClassifier(max_depth=3, min_samples_leaf=10, random_state=0)
    scores = {
        name: float(site_predictability(X, "site", feats, harmonizer=h,
                                        n_permutations=0, classifier=tree))
        for name, h in (
            ("combat", ComBatHarmonizer()),
            ("ours", QuantileComBatHarmonizer(n_quantiles=21)),
        )
    }
    chance = 1 / 3
    assert scores["combat"] > chance + 0.15, scores  # the shapes give the site
    assert scores["ours"] < chance + 0.07, scores  # matched quantiles do not


def test_quantile_map_equals_a_direct_computation():
    X = _skewed_cohort(n_per_site=60, n_features=3)
    train, test = X.iloc[::2], X.iloc[1::2]
    ours = QuantileComBatHarmonizer(n_quantiles=5).fit(train)
    base = ComBatHarmonizer().fit(train)
    levels = np.linspace(0, 1, 5)
    resid_train = base.transform(train).to_numpy() - base.grand_mean_
    resid_test = base.transform(test).to_numpy() - base.grand_mean_
    pooled = np.quantile(resid_train, levels, axis=0)
    expected = np.empty_like(resid_test)
    for site in ("s0", "s1", "s2"):
        at_train = (train["site"] == site).to_numpy()
        at_test = (test["site"] == site).to_numpy()
        knots = np.quantile(resid_train[at_train], levels, axis=0)
        for j in range(3):
            col = resid_test[at_test, j]
            mapped = np.interp(col, knots[:, j], pooled[:, j])
            low, high = col < knots[0, j], col > knots[-1, j]
            mapped[low] = pooled[0, j] + col[low] - knots[0, j]
            mapped[high] = pooled[-1, j] + col[high] - knots[-1, j]
            expected[at_test, j] = mapped
    np.testing.assert_allclose(ours.transform(test).to_numpy(),
                               expected + base.grand_mean_, rtol=0, atol=1e-12)
    # the map is monotone within a site: the order of the rows is kept
    out = ours.transform(test)
    for site in ("s0", "s1", "s2"):
        at = (test["site"] == site).to_numpy()
        for name in out.columns:
            order = np.argsort(test.loc[at, name].to_numpy(), kind="stable")
            assert np.all(np.diff(out.loc[at, name].to_numpy()[order]) >= 0)


def test_quantiles_off_equals_combat_and_new_sites_keep_combat():
    X = _x(_cohort(), "age", "sex")
    new = X["site"] == "site_3"
    off = _quiet(QuantileComBatHarmonizer(unseen_site="estimate",
                                          n_quantiles=None).fit, X[~new])
    on = _quiet(QuantileComBatHarmonizer(unseen_site="estimate",
                                             n_quantiles=11).fit, X[~new])
    assert off.site_quantiles_ is None
    assert on.site_quantiles_.shape == (3, 11, X.shape[1] - 1)
    # a new site has no training quantiles: its rows keep ComBat (and pooling)
    np.testing.assert_array_equal(_quiet(on.transform, X[new]).to_numpy(),
                                  _quiet(off.transform, X[new]).to_numpy())
    # quantiles change the training sites' rows
    assert not np.allclose(on.transform(X[~new]).to_numpy(),
                           off.transform(X[~new]).to_numpy())


def test_quantiles_learned_from_the_training_rows_only():
    X = _skewed_cohort(n_per_site=60, n_features=3)
    train, test = X.iloc[::2], X.iloc[1::2]
    fitted = QuantileComBatHarmonizer(n_quantiles=11).fit(train)
    out = fitted.transform(test)
    # one row at a time: the same output (no statistic of the transformed rows)
    single = pd.concat([fitted.transform(test.iloc[i : i + 1])
                        for i in range(0, len(test), 5)])
    np.testing.assert_array_equal(single.to_numpy(), out.iloc[::5].to_numpy())
    # the held-out rows take no part in the fit
    wild = test.assign(**{c: test[c] * 10 for c in ("f0", "f1", "f2")})
    refit = QuantileComBatHarmonizer(n_quantiles=11).fit(train)
    np.testing.assert_array_equal(refit.site_quantiles_, fitted.site_quantiles_)
    np.testing.assert_array_equal(refit.transform(test).to_numpy(), out.to_numpy())
    assert not np.allclose(refit.transform(wild).to_numpy(), out.to_numpy())


def test_quantiles_keep_a_protected_target():
    """Sites that differ only in the target: the quantiles do not remove it."""
    rng = np.random.default_rng(0)
    n = 300
    site = np.repeat(["a", "b", "c"], n // 3)
    age = np.concatenate([rng.uniform(20, 40, n // 3), rng.uniform(40, 60, n // 3),
                          rng.uniform(60, 80, n // 3)])
    X = pd.DataFrame({f"f{j}": 0.05 * age + rng.standard_normal(n) for j in range(3)})
    X["site"] = site
    cv = SiteStratifiedKFold(3, shuffle=True, random_state=0)
    preds = {}
    for q in (None, 21):
        pipe = make_pipeline(QuantileComBatHarmonizer(n_quantiles=q), Ridge(1.0))
        preds[q] = cross_val_predict(pipe, X, age, cv=cv, groups=X["site"])
    r2 = {q: 1 - np.mean((age - p) ** 2) / np.var(age) for q, p in preds.items()}
    assert r2[21] > r2[None] - 0.02, r2


@pytest.mark.parametrize("unseen", ["estimate_outside_target", "estimate_prior",
                                    "estimate_prior_cov"])
def test_new_site_options_of_combat_are_combats(unseen):
    # every unseen-site option reaches ComBat's estimate (the fitted new-site
    # prior included): with both steps off the new site's rows equal ComBat's,
    # and they differ from plain "estimate"
    df = make_multisite_features(300, 6, n_sites=6, site_effect=1.0, random_state=3)
    X, y = df.drop(columns=["y", "age", "sex"]), df["age"]
    new = X["site"] == "site_5"
    kwargs = {"unseen_site": unseen, "n_quantiles": None,
              "site_constant": "harmonize"}
    ours = _quiet(QuantileComBatHarmonizer(**kwargs).fit, X[~new], y[~new])
    ref = _quiet(ComBatHarmonizer(unseen_site=unseen).fit, X[~new], y[~new])
    plain = _quiet(ComBatHarmonizer(unseen_site="estimate").fit, X[~new], y[~new])
    out = _quiet(ours.transform, X[new]).to_numpy()
    np.testing.assert_allclose(out, _quiet(ref.transform, X[new]).to_numpy(),
                               rtol=0, atol=1e-12)
    assert not np.allclose(out, _quiet(plain.transform, X[new]).to_numpy())
