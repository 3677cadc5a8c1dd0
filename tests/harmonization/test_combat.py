"""Behaviour of ComBatHarmonizer beyond the neuroHarmonize anchors."""

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_validate
from sklearn.pipeline import make_pipeline

from sklearn_medprep import ComBatHarmonizer
from sklearn_medprep.datasets import make_multisite_features
from sklearn_medprep.exceptions import (
    MedprepWarning,
    SubjectTableError,
    TargetProxyError,
)
from sklearn_medprep.harmonization._combat import MIN_NEW_SITE_SUBJECTS
from sklearn_medprep.model_selection import SiteStratifiedKFold

N, P = 97, 9


@pytest.fixture
def df():
    data = make_multisite_features(
        n_subjects=N, n_features=P, site_sizes=[41, 17, 39], random_state=0
    )
    # a non-default, shuffled index: alignment must follow it
    data.index = pd.Index(np.random.RandomState(1).permutation(N) * 10 + 3)
    return data


FEATS = [f"f{j:03d}" for j in range(P)]


def _x(df, *extra):
    return df[[*FEATS, "site", "age", "sex", *extra]]


def test_table_in_table_out(df):
    X = _x(df).assign(subject=[f"s{i}" for i in range(N)])
    out = ComBatHarmonizer(covariates=["age", "sex"]).fit_transform(X)
    assert isinstance(out, pd.DataFrame)
    assert out.index.equals(X.index)
    # features harmonized, site/covariates consumed, other columns passed through
    assert list(out.columns) == [*FEATS, "subject"]
    assert out["subject"].equals(X["subject"])
    assert np.abs(out[FEATS].to_numpy() - X[FEATS].to_numpy()).max() > 0.1
    kept = ComBatHarmonizer(covariates=["age", "sex"], keep_covariates=True)
    out2 = kept.fit_transform(X)
    assert list(out2.columns) == list(X.columns)
    assert list(kept.get_feature_names_out()) == list(X.columns)
    np.testing.assert_array_equal(out2[FEATS].to_numpy(), out[FEATS].to_numpy())


def test_site_effects_removed(df):
    out = ComBatHarmonizer(covariates=["age", "sex"]).fit_transform(_x(df))
    before = df.groupby("site")[FEATS].mean().std().mean()
    after = out.groupby(df["site"])[FEATS].mean().std().mean()
    assert after < 0.5 * before


def test_fitted_model_holds_no_subject_sized_array(df):
    combat = ComBatHarmonizer(covariates=["age", "sex"]).fit(_x(df))

    def sizes(value):
        if isinstance(value, dict):
            for v in value.values():
                yield from sizes(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                yield from sizes(v)
        elif isinstance(value, (np.ndarray, pd.Series, pd.DataFrame)):
            yield value.shape

    shapes = list(sizes(vars(combat)))
    assert shapes and all(N not in shape for shape in shapes), shapes
    assert combat.coef_.shape == (3 + 2, P)
    assert combat.gamma_star_.shape == combat.delta_star_.shape == (3, P)


def test_sites_and_covariates_by_metadata_routing(df):
    X = df[FEATS]
    expected = ComBatHarmonizer(covariates=["age", "sex"]).fit_transform(_x(df))
    combat = ComBatHarmonizer()
    got = combat.fit_transform(X, sites=df["site"], covariates=df[["age", "sex"]])
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), atol=1e-12)
    # a plain array with routed sites returns an array
    arr = ComBatHarmonizer().fit(X.to_numpy(), sites=df["site"].to_numpy())
    assert isinstance(
        arr.transform(X.to_numpy(), sites=df["site"].to_numpy()), np.ndarray
    )
    with sklearn.config_context(enable_metadata_routing=True):
        step = ComBatHarmonizer().set_fit_request(sites=True, covariates=True)
        step = step.set_transform_request(sites=True, covariates=True)
        pipe = make_pipeline(step, "passthrough")
        got = pipe.fit(X, sites=df["site"], covariates=df[["age", "sex"]]).transform(
            X, sites=df["site"], covariates=df[["age", "sex"]]
        )
    np.testing.assert_allclose(np.asarray(got), expected.to_numpy(), atol=1e-12)


def test_array_without_sites_is_refused(df):
    with pytest.raises(ValueError, match="needs the site of each row"):
        ComBatHarmonizer().fit(df[FEATS].to_numpy())
    with pytest.raises(SubjectTableError, match="'scanner'"):
        ComBatHarmonizer(site="scanner").fit(_x(df))


def test_set_output_pandas(df):
    combat = ComBatHarmonizer(covariates=["age", "sex"]).set_output(transform="pandas")
    out = combat.fit_transform(_x(df))
    assert list(out.columns) == FEATS and out.index.equals(df.index)


def test_categorical_covariates_match_numeric_encoding(df):
    numeric = _x(df).assign(sex=(df["sex"] == "M").astype(float))
    a = ComBatHarmonizer(covariates=["age", "sex"]).fit_transform(numeric)
    b = ComBatHarmonizer(covariates=["age", "sex"]).fit_transform(_x(df))
    cat = _x(df).assign(sex=df["sex"].astype("category"))
    c = ComBatHarmonizer(covariates=["age", "sex"]).fit_transform(cat)
    np.testing.assert_allclose(b.to_numpy(), a.to_numpy(), atol=1e-10)
    np.testing.assert_allclose(c.to_numpy(), a.to_numpy(), atol=1e-10)


def test_unseen_covariate_level_is_an_error(df):
    combat = ComBatHarmonizer(covariates=["age", "sex"]).fit(_x(df))
    bad = _x(df).copy()
    bad.loc[bad.index[4], "sex"] = "X"
    with pytest.raises(SubjectTableError, match=r"column 'sex'.*'X'") as info:
        combat.transform(bad)
    assert info.value.row == bad.index[4]


def test_transform_subsets_and_single_rows(df):
    combat = ComBatHarmonizer(covariates=["age", "sex"]).fit(_x(df))
    full = combat.transform(_x(df))
    one_site = _x(df)[df["site"] == "site_1"]
    np.testing.assert_allclose(
        combat.transform(one_site).to_numpy(),
        full.loc[one_site.index].to_numpy(),
        rtol=0,
        atol=1e-12,
    )
    for i in (0, 50, N - 1):
        row = _x(df).iloc[[i]]
        np.testing.assert_allclose(
            combat.transform(row).to_numpy(), full.iloc[[i]].to_numpy(), atol=1e-12
        )


def test_nan_cells_stay_nan_and_do_not_disturb(df):
    X = _x(df).copy()
    rows = X.index[[3, 20, 60]]
    X.loc[rows, "f000"] = np.nan
    combat = ComBatHarmonizer(covariates=["age", "sex"], eb=False).fit(X)
    out = combat.transform(X)
    assert out.loc[rows, "f000"].isna().all()
    assert out.drop(index=rows)["f000"].notna().all()
    assert out.drop(columns="f000").notna().all().all()
    # other features are exactly what they are without the NaN feature
    ref = ComBatHarmonizer(covariates=["age", "sex"], eb=False).fit(
        X.drop(columns="f000")
    )
    np.testing.assert_allclose(
        out.drop(columns="f000").to_numpy(),
        ref.transform(X.drop(columns="f000")),
        atol=1e-12,
    )
    # the NaN feature's estimates are those of its finite rows alone
    alone = ComBatHarmonizer(covariates=["age", "sex"], eb=False).fit(
        X.drop(index=rows)[["f000", "site", "age", "sex"]]
    )
    np.testing.assert_allclose(combat.coef_[:, 0], alone.coef_[:, 0], rtol=1e-10)
    np.testing.assert_allclose(
        combat.gamma_star_[:, 0], alone.gamma_star_[:, 0], rtol=1e-10
    )
    np.testing.assert_allclose(combat.var_pooled_[0], alone.var_pooled_[0], rtol=1e-10)
    # a NaN at transform time leaves the rest of its row unchanged
    full = combat.transform(_x(df))
    np.testing.assert_allclose(
        out.loc[rows].drop(columns="f000").to_numpy(),
        full.loc[rows].drop(columns="f000").to_numpy(),
        atol=1e-12,
    )
    # with empirical Bayes, still no NaN flood
    eb_out = ComBatHarmonizer(covariates=["age", "sex"]).fit_transform(X)
    assert int(eb_out.isna().sum().sum()) == 3


def test_unseen_site_policies(df):
    train = _x(df)[df["site"] != "site_2"]
    new = _x(df)[df["site"] == "site_2"]
    with pytest.raises(SubjectTableError, match="'site_2' was not seen"):
        ComBatHarmonizer(covariates=["age", "sex"]).fit(train).transform(new)

    passthrough = ComBatHarmonizer(covariates=["age", "sex"], unseen_site="passthrough")
    passthrough.fit(train)
    with pytest.warns(MedprepWarning, match="site_2"):
        out = passthrough.transform(_x(df))
    np.testing.assert_array_equal(out.loc[new.index].to_numpy(), new[FEATS].to_numpy())
    seen = ComBatHarmonizer(covariates=["age", "sex"]).fit(train).transform(train)
    np.testing.assert_allclose(out.loc[train.index].to_numpy(), seen.to_numpy())

    estimate = ComBatHarmonizer(covariates=["age", "sex"], unseen_site="estimate")
    estimate.fit(train)
    out = estimate.transform(new)
    assert out.notna().all().all()
    # the new site's mean offset is removed: its mean moves towards the others'
    gap_before = (new[FEATS].mean() - seen.mean()).abs().mean()
    gap_after = (out.mean() - seen.mean()).abs().mean()
    assert gap_after < 0.5 * gap_before
    assert not hasattr(estimate, "new_sites_")  # transform does not refit
    with pytest.raises(SubjectTableError, match=f"at least {MIN_NEW_SITE_SUBJECTS}"):
        estimate.transform(new.iloc[: MIN_NEW_SITE_SUBJECTS - 1])


def test_guard_site_with_one_subject(df):
    X = _x(df).iloc[:41]  # site_0 only, then one row of site_1
    X = pd.concat([X, _x(df)[df["site"] == "site_1"].iloc[:1]])
    with pytest.raises(SubjectTableError, match="site 'site_1' has 1 subject"):
        ComBatHarmonizer(covariates=["age"]).fit(X)


def test_guard_single_site(df):
    with pytest.raises(SubjectTableError, match="at least 2 sites"):
        ComBatHarmonizer().fit(_x(df).assign(site="a"))


def test_guard_constant_feature(df):
    X = _x(df).assign(f000=5.0)
    combat = ComBatHarmonizer(covariates=["age", "sex"])
    with pytest.warns(MedprepWarning, match="f000"):
        out = combat.fit_transform(X)
    assert (out["f000"] == 5.0).all()
    assert not combat.harmonized_[0] and combat.harmonized_[1:].all()
    ref = ComBatHarmonizer(covariates=["age", "sex"]).fit_transform(
        X.drop(columns="f000")
    )
    np.testing.assert_allclose(
        out.drop(columns="f000").to_numpy(), ref.to_numpy(), atol=1e-12
    )


def test_guard_covariate_equal_to_target(df):
    X = _x(df, "y")
    combat = ComBatHarmonizer(covariates=["age", "y"], features=FEATS)
    with pytest.raises(SubjectTableError, match="column 'y'.*equals the target"):
        combat.fit(X, df["y"])


def test_guard_bad_reference_and_singular_design(df):
    with pytest.raises(ValueError, match="'site_9'"):
        ComBatHarmonizer(reference_site="site_9").fit(_x(df))
    X = _x(df).assign(
        scanner_id=df["site"].map({"site_0": 1.0, "site_1": 2.0, "site_2": 3.0})
    )
    with pytest.raises(ValueError, match="singular"):
        ComBatHarmonizer(covariates=["scanner_id"], features=FEATS).fit(X)


def test_single_feature_bypasses_eb(df):
    combat = ComBatHarmonizer(covariates=["age"])
    out = combat.fit_transform(df[["f000", "site", "age"]])
    assert not combat.eb_ and out.notna().all().all()
    plain = ComBatHarmonizer(covariates=["age"], eb=False).fit_transform(
        df[["f000", "site", "age"]]
    )
    np.testing.assert_allclose(out.to_numpy(), plain.to_numpy())


def test_reference_site_rows_unchanged(df):
    out = ComBatHarmonizer(covariates=["age"], reference_site="site_1").fit_transform(
        _x(df)
    )
    ref = df["site"] == "site_1"
    np.testing.assert_array_equal(
        out.loc[ref, FEATS].to_numpy(), df.loc[ref, FEATS].to_numpy()
    )
    assert (
        np.abs(out.loc[~ref, FEATS].to_numpy() - df.loc[~ref, FEATS].to_numpy()).max()
        > 0.1
    )


def test_leakage_harmonizing_inside_cv_differs_and_rows_are_independent(df):
    X = _x(df)
    y = df["y"]
    cv = SiteStratifiedKFold(n_splits=4)
    pipe = make_pipeline(
        ComBatHarmonizer(covariates=["age", "sex"]), LogisticRegression()
    )
    res = cross_validate(pipe, X, y, cv=cv, return_estimator=True, return_indices=True)
    whole = ComBatHarmonizer(covariates=["age", "sex"]).fit_transform(X)
    for est, test in zip(res["estimator"], res["indices"]["test"]):
        combat = est[0]
        test_out = combat.transform(X.iloc[test])
        # fitted without the test fold: differs from harmonizing the whole table
        assert np.abs(test_out.to_numpy() - whole.iloc[test].to_numpy()).max() > 1e-3
        # one subject's output does not depend on the other test subjects
        first = X.iloc[test[:1]]
        others = X.iloc[test[1:]].copy()
        others[FEATS] = others[FEATS] * 3.0 + 100.0
        mixed = combat.transform(pd.concat([first, others]))
        np.testing.assert_allclose(
            mixed.iloc[:1].to_numpy(), test_out.iloc[:1].to_numpy(), atol=1e-12
        )
        np.testing.assert_allclose(
            combat.transform(first).to_numpy(), test_out.iloc[:1].to_numpy(), atol=1e-12
        )


def test_unknown_feature_column_at_transform(df):
    combat = ComBatHarmonizer(covariates=["age", "sex"]).fit(_x(df))
    with pytest.raises(ValueError, match="f003"):
        combat.transform(_x(df).drop(columns="f003"))


def test_sklearn_contract_on_tables(df):
    """The scikit-learn checks that cannot feed a site, redone on a table."""
    import pickle

    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError

    X = _x(df)
    combat = ComBatHarmonizer(covariates=["age", "sex"])
    with pytest.raises(NotFittedError):
        combat.transform(X)
    params = combat.get_params()
    assert combat.fit(X, df["y"]) is combat  # fit returns self, takes y
    assert combat.get_params() == params  # parameters not overwritten
    assert combat.n_features_in_ == X.shape[1]
    assert list(combat.feature_names_in_) == list(X.columns)
    out = combat.transform(X)
    state = {k: v for k, v in vars(combat).items()}
    combat.transform(X)
    assert set(vars(combat)) == set(state)  # transform leaves the state unchanged
    # idempotent fit and clone
    again = clone(combat).fit(X, df["y"]).transform(X)
    np.testing.assert_array_equal(again.to_numpy(), out.to_numpy())
    # pickling
    restored = pickle.loads(pickle.dumps(combat))
    np.testing.assert_array_equal(restored.transform(X).to_numpy(), out.to_numpy())
    # row order: permuting rows permutes the output
    perm = np.random.RandomState(0).permutation(len(X))
    np.testing.assert_allclose(
        combat.transform(X.iloc[perm]).to_numpy(), out.iloc[perm].to_numpy(), atol=1e-12
    )
    # dtypes, read-only and Fortran-ordered data through the routed-sites path
    arr = np.asfortranarray(X[FEATS].to_numpy())
    arr.setflags(write=False)
    sites = df["site"].to_numpy()
    ref = ComBatHarmonizer().fit(arr, sites=sites).transform(arr, sites=sites)
    for data in (
        arr.astype(np.float32),
        np.ascontiguousarray(arr),
        X[FEATS].astype(np.float32),
    ):
        got = ComBatHarmonizer().fit(data, sites=sites).transform(data, sites=sites)
        assert np.asarray(got).dtype == np.float64
        np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-5, atol=1e-4)
    # wrong number of features at transform
    with pytest.raises(ValueError, match="features"):
        ComBatHarmonizer().fit(arr, sites=sites).transform(arr[:, :3], sites=sites)
    # a 1-D X is refused
    with pytest.raises(ValueError):
        ComBatHarmonizer().fit(arr[:, 0], sites=sites)


def test_gam_with_nan_and_bounds(df):
    X = _x(df)[["f000", "f001", "f002", "site", "age", "sex"]].copy()
    X.iloc[4, 0] = np.nan
    combat = ComBatHarmonizer(
        covariates=["age", "sex"],
        smooth_terms=["age"],
        smooth_term_bounds=(0.0, 100.0),
        random_state=0,
    )
    out = combat.fit_transform(X)
    assert out.isna().sum().to_dict() == {"f000": 1, "f001": 0, "f002": 0}
    assert combat.spline_knots_[0].min() == 0.0
    assert combat.spline_knots_[0].max() == 100.0
    # an age beyond the training range but inside the bounds is harmonized
    row = X.iloc[[0]].assign(age=99.0)
    assert combat.transform(row).notna().all().all()
    # same seed, same fit
    again = clone(combat).fit_transform(X)
    np.testing.assert_array_equal(again.to_numpy(), out.to_numpy())
    with pytest.raises(SubjectTableError, match="smooth term is not a covariate"):
        ComBatHarmonizer(covariates=["sex"], smooth_terms=["age"]).fit(X)


def test_target_column_among_features_is_refused(df):
    X = _x(df, "y")
    with pytest.raises(TargetProxyError, match="column 'y'.*equals y on") as err:
        ComBatHarmonizer(covariates=["age", "sex"], features=None).fit(X, df["y"])
    assert err.value.column == "y"
    assert "features=" not in str(err.value)  # no setting lets it through


def test_binary_columns_harmonized_by_default_warn(df):
    X = _x(df, "y")
    with pytest.warns(MedprepWarning, match=r"\['y'\], which take at most two"):
        out = ComBatHarmonizer(covariates=["age", "sex"]).fit_transform(X)
    assert "y" in out.columns  # warned, not dropped silently
    # naming the features explicitly is the way to say "I know"
    explicit = ComBatHarmonizer(covariates=["age", "sex"], features=FEATS)
    out = explicit.fit_transform(X)
    np.testing.assert_array_equal(out["y"], X["y"])  # passed through untouched


def test_routed_pandas_metadata_is_aligned_by_label(df):
    X = df[FEATS]
    expected = ComBatHarmonizer(covariates=["age", "sex"]).fit_transform(_x(df))
    with sklearn.config_context(enable_metadata_routing=True):
        shuffled = df[["age", "sex"]].sample(frac=1, random_state=0)
        sites = df["site"].sample(frac=1, random_state=1)
        out = ComBatHarmonizer().fit_transform(X, sites=sites, covariates=shuffled)
        pd.testing.assert_frame_equal(out, expected[out.columns], atol=1e-12)
        # labels that do not match the rows of X are an error, not a reordering
        wrong = shuffled.set_axis(np.arange(len(shuffled)) + 10_000)
        with pytest.raises(SubjectTableError, match="does not match the rows of X"):
            ComBatHarmonizer().fit(X, sites=df["site"], covariates=wrong)


def test_get_feature_names_out_checks_input_features(df):
    fitted = ComBatHarmonizer(covariates=["age", "sex"]).fit(_x(df))
    names = fitted.get_feature_names_out()
    assert list(names) == FEATS
    assert list(fitted.get_feature_names_out(_x(df).columns)) == FEATS
    with pytest.raises(ValueError, match="input_features is not equal"):
        fitted.get_feature_names_out(["nonsense"])
