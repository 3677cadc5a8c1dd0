"""Target protection of ComBatHarmonizer: kept in fit, never needed in transform."""

import contextlib
import io
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_medprep import ComBatHarmonizer
from sklearn_medprep.datasets import make_multisite_features
from sklearn_medprep.exceptions import MedprepWarning, SubjectTableError
from sklearn_medprep.model_selection import SiteStratifiedKFold


@pytest.fixture
def df():
    data = make_multisite_features(
        n_subjects=97, n_features=9, site_sizes=[41, 17, 39], random_state=3
    )
    data["age"] = data["age"].astype(np.float32).astype(np.float64)
    data["male"] = (data["sex"] == "M").astype(np.float64)
    return data


FEATS = [f"f{j:03d}" for j in range(9)]


def _x(df):
    return df[[*FEATS, "site", "age", "male"]]


@pytest.mark.parametrize("mean_only", [True, False])
@pytest.mark.parametrize("protect", ["auto", "linear", "smooth"])
def test_changing_test_labels_gives_bitwise_identical_transform(df, mean_only, protect):
    """Harmonized test rows do not depend on their labels; leaky ComBat's do."""
    X = _x(df)
    y = df["age"].to_numpy() if protect == "smooth" else df["y"].to_numpy()
    covariates = ["male"] if protect == "smooth" else ["age", "male"]
    X = X.drop(columns="age") if protect == "smooth" else X
    train, test = next(SiteStratifiedKFold(4, shuffle=True, random_state=0).split(X))
    flipped = y.copy()
    flipped[test] = (1 - y[test]) if protect != "smooth" else y[test][::-1]
    outs, leaky = [], []
    for labels in (y, flipped):
        combat = ComBatHarmonizer(
            covariates=covariates,
            protect_target=protect,
            mean_only=mean_only,
            random_state=0,
        )
        combat.fit(X.iloc[train], labels[train])
        outs.append(combat.transform(X.iloc[test]).to_numpy())
        leaky.append(
            ComBatHarmonizer(
                covariates=covariates,
                protect_target=protect,
                mean_only=mean_only,
                random_state=0,
            )
            .fit_transform(X, labels)
            .to_numpy()[test]
        )
    assert outs[0].tobytes() == outs[1].tobytes()
    # the check can fail: fitting on the test rows with their labels (the
    # common mistake) makes their output depend on them
    assert np.abs(leaky[0] - leaky[1]).max() > 1e-6


def _quiet(func, *args, **kwargs):
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return func(*args, **kwargs)


@pytest.mark.parametrize("mean_only", [False, True])
def test_protected_fit_is_neuroharmonize_with_the_label_as_covariate(df, mean_only):
    """Fit = neuroHarmonize with y as a covariate; transform differs by the
    documented term ``(t - t_bar) theta (1 - 1 / sqrt(delta*))`` only."""
    neuroHarmonize = pytest.importorskip("neuroHarmonize")
    X = _x(df)
    y = df["y"].to_numpy()
    covars = df[["site", "age", "male"]].rename(columns={"site": "SITE"})
    model, learned = _quiet(
        neuroHarmonize.harmonizationLearn,
        df[FEATS].to_numpy(),
        covars.assign(y=y.astype(np.float64)),
    )
    combat = ComBatHarmonizer(
        covariates=["age", "male"], mean_only=mean_only, target_scale="centre"
    )
    out = combat.fit(X, y).transform(X).to_numpy()
    term = combat.target_term_
    assert term.kind == "classes" and list(term.levels) == [0, 1]
    np.testing.assert_allclose(term.centre, [y.mean()])
    theta = combat.coef_[combat.sites_.size :][combat.target_columns_][0]
    codes = np.searchsorted(combat.sites_, df["site"].to_numpy())
    delta = combat.delta_star_[codes]
    correction = np.outer(y - y.mean(), theta) * (1 - 1 / np.sqrt(delta))
    if mean_only:
        # the target's term cancels: the output is the one its own label gives
        assert np.abs(correction).max() == 0
        ref = ComBatHarmonizer(covariates=["age", "male", "y"], mean_only=True)
        ref_out = ref.fit_transform(X.assign(y=y)).to_numpy()
        np.testing.assert_allclose(out, ref_out, atol=1e-12)
    else:
        assert np.abs(correction).max() > 1e-3  # the approximation is not void
        assert np.abs(out + correction - learned).max() <= 1e-10
        np.testing.assert_allclose(
            combat.gamma_star_, model["gamma_star"], rtol=1e-9, atol=1e-12
        )


def _projected_by_hand(combat, X):
    """``target_scale="project"`` computed row by row from the fitted model."""
    feats = combat.feature_names_in_[: combat.grand_mean_.size]
    x = X[list(feats)].to_numpy()
    n_sites = combat.sites_.size
    coef_cov = combat.coef_[n_sites:]
    design = np.column_stack(
        [X["age"], X["male"], np.full(len(X), combat.target_term_.centre[0])]
    )
    mod = design @ coef_cov
    sd = np.sqrt(combat.var_pooled_)
    theta = coef_cov[combat.target_columns_]  # (1, p)
    codes = np.searchsorted(combat.sites_, X["site"].to_numpy())
    out = np.empty_like(x)
    for i in range(len(x)):
        u = (x[i] - combat.grand_mean_ - mod[i]) / sd - combat.gamma_star_[codes[i]]
        b = theta[0] / sd
        finite = np.isfinite(u)
        c = np.dot(b[finite], u[finite]) / np.dot(b[finite], b[finite])
        scaled = c * b + (u - c * b) / np.sqrt(combat.delta_star_[codes[i]])
        out[i] = scaled * sd + combat.grand_mean_ + mod[i]
    return out


def test_project_keeps_the_rows_estimated_target_effect_unscaled(df, monkeypatch):
    """target_scale='project' = the projection by hand; a NaN cell leaves the
    rest of its row projected over its finite features."""
    X = _x(df)
    y = df["y"].to_numpy()
    train, test = next(SiteStratifiedKFold(4, shuffle=True, random_state=0).split(X))
    X_test = X.iloc[test].copy()
    X_test.iloc[2, 4] = np.nan
    fits = {
        kind: ComBatHarmonizer(covariates=["age", "male"], target_scale=kind).fit(
            X.iloc[train], y[train]
        )
        for kind in ("project", "centre")
    }
    project = fits["project"].transform(X_test).to_numpy()
    centre = fits["centre"].transform(X_test).to_numpy()
    expected = _projected_by_hand(fits["project"], X_test)
    np.testing.assert_allclose(project, expected, rtol=1e-12, atol=1e-12)
    assert np.isnan(project[2, 4]) and np.isfinite(np.delete(project[2], 4)).all()
    assert np.abs(project - centre)[np.isfinite(project)].max() > 1e-3
    # fitted parameters are the same; only transform differs
    np.testing.assert_array_equal(
        fits["project"].delta_star_, fits["centre"].delta_star_
    )
    # in blocks of 2 rows, the same output
    from sklearn_medprep.harmonization import _target as _combat_target

    monkeypatch.setattr(_combat_target, "_PROJECT_CELLS", 2 * len(FEATS))
    blocked = fits["project"].transform(X_test).to_numpy()
    np.testing.assert_allclose(blocked, project, rtol=1e-13, atol=1e-13)


def _prevalence_cohort(seed, site_effects, n_per_site=150, n_features=12):
    """Two sites, P(y=1) 0.75 vs 0.25, the same subjects with or without site."""
    rng = np.random.default_rng(seed)
    site = np.repeat([0, 1], n_per_site)
    y = (rng.random(site.size) < np.where(site == 0, 0.75, 0.25)).astype(int)
    beta = rng.normal(0, 0.35, n_features)
    gamma = rng.normal(0, 1.0, (2, n_features))
    delta = np.exp(rng.normal(0, 0.3, (2, n_features)))
    noise = rng.normal(0, 1.0, (site.size, n_features))
    site_part = delta[site] * noise + gamma[site] if site_effects else noise
    x = np.outer(y, beta) + site_part
    table = pd.DataFrame(x, columns=[f"f{j}" for j in range(n_features)])
    table["site"] = np.array(["A", "B"])[site]
    return table, pd.Series(y, name="y")


def _cv_auc(make_model, X, y, site):
    cv = SiteStratifiedKFold(5, stratify_y=True, shuffle=True, random_state=0)
    proba = np.empty(len(y))
    for train, test in cv.split(X, y, groups=site):
        model = make_model().fit(X.iloc[train], y.iloc[train])
        proba[test] = model.predict_proba(X.iloc[test])[:, 1]
    return roc_auc_score(y, proba)


def test_protected_pipeline_reaches_the_no_site_effect_ceiling():
    """Site-dependent prevalence: protected ComBat keeps the label signal."""

    def pipe(protect):
        return lambda: make_pipeline(
            ComBatHarmonizer(protect_target=protect),
            StandardScaler(),
            LogisticRegression(),
        )

    def plain():
        return make_pipeline(
            StandardScaler(),
            LogisticRegression(),
        )

    scores = {"recommended": [], "unprotected": [], "ceiling": []}
    for seed in range(5):
        X, y = _prevalence_cohort(seed, site_effects=True)
        site = X["site"]
        scores["recommended"].append(_cv_auc(pipe("auto"), X, y, site))
        scores["unprotected"].append(_cv_auc(pipe("none"), X, y, site))
        X0, y0 = _prevalence_cohort(seed, site_effects=False)
        assert y0.equals(y)
        scores["ceiling"].append(_cv_auc(plain, X0.drop(columns="site"), y0, site))
    mean = {k: float(np.mean(v)) for k, v in scores.items()}
    print(mean)
    assert abs(mean["recommended"] - mean["ceiling"]) <= 0.02, mean
    assert mean["recommended"] > mean["unprotected"] + 0.03, mean


@pytest.mark.parametrize(
    "covariate, target",
    [
        (["neg", "pos", "pos", "neg"] * 20, [0, 1, 1, 0] * 20),
        ([True, False, False, True] * 20, [0, 1, 1, 0] * 20),
        ([1.0, 0.0, 0.0, 1.0] * 20, ["pos", "neg", "neg", "pos"] * 20),
        (None, None),  # age in months against the target age in years
    ],
)
def test_covariate_equal_to_target_up_to_relabelling_is_refused(
    df, covariate, target
):
    X = _x(df).iloc[:80]
    if covariate is None:
        covariate, target = X["age"] * 12, X["age"].to_numpy()
    X = X.assign(label=np.asarray(covariate, dtype=object))
    combat = ComBatHarmonizer(covariates=["male", "label"], features=FEATS)
    with pytest.raises(SubjectTableError, match="column 'label'.*protect_target"):
        combat.fit(X, np.asarray(target))


def test_unrelated_covariates_are_accepted(df):
    X = _x(df)
    # sex and age are associated with nothing in particular: no refusal
    ComBatHarmonizer(covariates=["age", "male"]).fit(X, df["y"])
    ComBatHarmonizer(covariates=["male"]).fit(X.drop(columns="age"), df["age"])


def test_string_and_boolean_targets_are_classes(df):
    X = _x(df)
    labels = np.where(df["y"] == 1, "pos", "neg")
    a = ComBatHarmonizer(covariates=["age", "male"]).fit(X, labels)
    b = ComBatHarmonizer(covariates=["age", "male"]).fit(X, df["y"] == 1)
    c = ComBatHarmonizer(covariates=["age", "male"]).fit(X, df["y"])
    assert list(a.target_term_.levels) == ["neg", "pos"]
    assert b.target_term_.kind == a.target_term_.kind == "classes"
    np.testing.assert_allclose(a.transform(X), c.transform(X), atol=1e-12)
    np.testing.assert_allclose(b.transform(X), c.transform(X), atol=1e-12)
    # a continuous target is linear, several classes are one-hot
    assert ComBatHarmonizer(covariates=["male"]).fit(
        X.drop(columns="age"), df["age"]
    ).target_term_.kind == "linear"
    three = ComBatHarmonizer(covariates=["male"]).fit(X, df["y"] + (df["age"] > 60))
    assert three.target_term_.n_columns == 2
    # protect_target="none" (and fit without y) is plain ComBat
    none = ComBatHarmonizer(covariates=["age", "male"], protect_target="none")
    np.testing.assert_array_equal(
        none.fit(X, df["y"]).transform(X),
        ComBatHarmonizer(covariates=["age", "male"]).fit(X).transform(X),
    )


def test_target_guards(df):
    X = _x(df)
    COV = ["age", "male"]  # noqa: N806
    with pytest.raises(SubjectTableError, match="target y is missing"):
        ComBatHarmonizer(covariates=COV).fit(X, df["age"].where(df.index != 5))
    with pytest.raises(ValueError, match="numeric target"):
        ComBatHarmonizer(covariates=["age"], protect_target="linear").fit(
            X.drop(columns="male"), df["sex"]
        )
    with pytest.raises(ValueError, match="single class"):
        ComBatHarmonizer(covariates=COV).fit(X, np.zeros(len(X), dtype=int))
    with pytest.raises(ValueError, match="one target value per row"):
        ComBatHarmonizer(covariates=COV).fit(X, np.zeros((len(X), 2)))
    # a target that is the site itself leaves nothing to tell apart
    with pytest.raises(ValueError, match="singular.*target"):
        ComBatHarmonizer(covariates=COV).fit(X, df["site"] == "site_0")


def test_new_site_with_protected_target_warns(df):
    X = _x(df)
    train = X[X["site"] != "site_1"]
    test = X[X["site"] == "site_1"]
    combat = ComBatHarmonizer(covariates=["age", "male"], unseen_site="estimate")
    combat.fit(train, df.loc[train.index, "y"])
    with pytest.warns(MedprepWarning, match="training centre"):
        out = combat.transform(test)
    assert np.isfinite(out.to_numpy()).all()
    # without a protected target there is nothing to warn about
    plain = ComBatHarmonizer(covariates=["age", "male"], unseen_site="estimate")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain.fit(train).transform(test)


def test_cohort_without_site_effects_is_the_same_cohort():
    from sklearn_medprep.datasets import make_multisite_cohort

    kwargs = dict(shape=(12, 14, 10), random_state=0, confounding=0.6)
    with_site, truth = make_multisite_cohort(6, 2, return_effects=True, **kwargs)
    without, truth0 = make_multisite_cohort(
        6, 2, return_effects=True, site_effects=False, **kwargs
    )
    meta = ["site", "age", "sex", "y"]
    pd.testing.assert_frame_equal(with_site[meta], without[meta])
    pd.testing.assert_frame_equal(truth.lesion, truth0.lesion)  # same lesions
    import SimpleITK as sitk

    shapes = {sitk.GetArrayFromImage(img).shape for img in without["image"]}
    assert len(shapes) == 1  # one scanner grid for every site
    assert len({sitk.GetArrayFromImage(i).shape for i in with_site["image"]}) == 2


def _fcon1000_scores(path, harmonizer):
    from sklearn.base import clone
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score

    from sklearn_medprep import site_predictability

    table = pd.read_csv(path)
    table = table[table["site"].map(table["site"].value_counts()) >= 5]
    table = table.reset_index(drop=True)
    feats = [c for c in table.columns if c.endswith("_thickness")]
    X, y = table[[*feats, "site", "sex"]], table["age"].to_numpy()
    pred = np.empty(len(y))
    for train, test in SiteStratifiedKFold(5, shuffle=True, random_state=0).split(X):
        if harmonizer is None:
            h_train, h_test = X.iloc[train][feats], X.iloc[test][feats]
        else:
            h = clone(harmonizer).fit(X.iloc[train], y[train])
            h_train, h_test = h.transform(X.iloc[train]), h.transform(X.iloc[test])
        model = make_pipeline(StandardScaler(), RidgeCV(np.logspace(-2, 4, 13)))
        pred[test] = model.fit(h_train, y[train]).predict(h_test)
    # the site scored on rows the harmonizer was not fitted on (pooling the
    # test rows of all folds centres each site again: below chance)
    site = site_predictability(X, "site", feats, harmonizer=harmonizer, y=y)
    return r2_score(y, pred), site


@pytest.mark.slow
def test_fcon1000_recommended_keeps_age_and_removes_site(shared_data):
    """FCON1000 age: R2 >= raw - 0.02 and site predictability <= raw / 2."""
    path = shared_data / "multisite" / "pcn_fcon1000.csv"
    r2_raw, site_raw = _fcon1000_scores(path, None)
    r2_rec, site_rec = _fcon1000_scores(path, ComBatHarmonizer(covariates=["sex"]))
    r2_none, _ = _fcon1000_scores(
        path, ComBatHarmonizer(covariates=["sex"], protect_target="none")
    )
    assert r2_rec >= r2_raw - 0.02, (r2_rec, r2_raw)
    assert site_rec <= site_raw / 2, (site_rec, site_raw)
    assert r2_none < r2_raw - 0.3  # without protection the age signal is gone


def test_relabelling_codes_are_those_of_each_values_key():
    # 1 == 1.0 == True share a code, the text "1" does not (codes are found
    # per distinct value, then merged by key: the same as keying every row)
    from sklearn_medprep.harmonization._target import _codes

    values = np.array([1, 1.0, True, "1", "a", 2, np.int64(2), np.float32(2.0),
                       False, 0, "a"], dtype=object)
    assert _codes(values).tolist() == [0, 0, 0, 1, 2, 3, 3, 3, 4, 4, 2]
