import numpy as np
import pandas as pd
import pytest
import sklearn
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import make_pipeline

from sklearn_medprep import ComBatHarmonizer
from sklearn_medprep.datasets import make_multisite_features
from sklearn_medprep.exceptions import MedprepWarning, SubjectTableError
from sklearn_medprep.model_selection import LeaveOneSiteOut, SiteStratifiedKFold

SIZES = [31, 9, 17, 6]


@pytest.fixture
def df():
    return make_multisite_features(
        n_subjects=0, n_features=5, site_sizes=SIZES, random_state=0
    )


@pytest.mark.parametrize("shuffle, seed", [(False, None), (True, 0)])
@pytest.mark.parametrize("n_splits", [2, 3])
def test_every_site_in_every_training_fold_balanced_tests(df, n_splits, shuffle, seed):
    cv = SiteStratifiedKFold(n_splits=n_splits, shuffle=shuffle, random_state=seed)
    folds = list(cv.split(df))
    assert len(folds) == cv.get_n_splits() == n_splits
    tests = np.concatenate([t for _, t in folds])
    assert np.array_equal(np.sort(tests), np.arange(len(df)))  # a partition
    for train, test in folds:
        assert not set(train) & set(test)
        counts = df["site"].iloc[train].value_counts()
        assert set(counts.index) == set(df["site"])
        assert (counts >= 2).all()
    per_fold = np.array(
        [
            [np.sum(df["site"].iloc[t] == s) for t in (t for _, t in folds)]
            for s in sorted(df["site"].unique())
        ]
    )
    assert (per_fold.max(axis=1) - per_fold.min(axis=1) <= 1).all()


def test_stratify_y_balances_site_by_class(df):
    cv = SiteStratifiedKFold(n_splits=3, stratify_y=True)
    folds = [test for _, test in cv.split(df, df["y"])]
    for (site, label), cell in df.groupby(["site", "y"]):
        counts = [np.isin(cell.index, df.index[t]).sum() for t in folds]
        assert max(counts) - min(counts) <= 1, (site, label, counts)
    with pytest.raises(ValueError, match="needs y"):
        next(cv.split(df))


def test_groups_take_precedence_and_array_needs_groups(df):
    cv = SiteStratifiedKFold(n_splits=3)
    from_column = [t for _, t in cv.split(df)]
    from_groups = [
        t for _, t in cv.split(df.drop(columns="site").to_numpy(), groups=df["site"])
    ]
    for a, b in zip(from_column, from_groups):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="groups is None"):
        next(cv.split(df.drop(columns="site").to_numpy()))
    with pytest.raises(SubjectTableError, match="'site'"):
        next(cv.split(df.drop(columns="site")))


def test_site_too_small_is_refused(df):
    with pytest.raises(SubjectTableError, match=r"site 'site_3' has 6 row\(s\)"):
        next(SiteStratifiedKFold(n_splits=7).split(df))


def test_shuffle_is_seeded(df):
    a = [t for _, t in SiteStratifiedKFold(3, shuffle=True, random_state=1).split(df)]
    b = [t for _, t in SiteStratifiedKFold(3, shuffle=True, random_state=1).split(df)]
    c = [t for _, t in SiteStratifiedKFold(3).split(df)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    with pytest.raises(ValueError, match="shuffle is False"):
        next(SiteStratifiedKFold(3, random_state=1).split(df))


def test_repr():
    assert repr(SiteStratifiedKFold(n_splits=3)).startswith(
        "SiteStratifiedKFold(n_splits=3"
    )
    assert repr(LeaveOneSiteOut()) == "LeaveOneSiteOut(site='site', subject='subject')"


def test_as_cv_in_grid_search_with_the_table(df):
    X = df.drop(columns="y")
    pipe = make_pipeline(
        ComBatHarmonizer(covariates=["age", "sex"]), LogisticRegression()
    )
    search = GridSearchCV(
        pipe, {"logisticregression__C": [0.1, 1.0]}, cv=SiteStratifiedKFold(n_splits=3)
    )
    search.fit(X, df["y"])
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_groups_routed_under_metadata_routing(df):
    X = df.drop(columns="y")
    pipe = make_pipeline(
        ComBatHarmonizer(covariates=["age", "sex"]), LogisticRegression()
    )
    with sklearn.config_context(enable_metadata_routing=True):
        res = cross_validate(
            pipe,
            X,
            df["y"],
            cv=SiteStratifiedKFold(n_splits=3),
            params={"groups": df["site"]},
            return_indices=True,
            error_score="raise",
        )
    for train in res["indices"]["train"]:
        assert set(df["site"].iloc[train]) == set(df["site"])
    # without routing the groups reach the splitter as well
    res = cross_validate(
        pipe,
        X,
        df["y"],
        cv=SiteStratifiedKFold(n_splits=3),
        groups=df["site"],
        return_indices=True,
    )
    assert len(res["test_score"]) == 3


def test_leave_one_site_out(df):
    cv = LeaveOneSiteOut()
    assert cv.get_n_splits(df) == 4
    assert cv.get_n_splits(groups=df["site"]) == 4
    seen = []
    for train, test in cv.split(df):
        sites = df["site"].iloc[test].unique()
        assert len(sites) == 1 and sites[0] not in set(df["site"].iloc[train])
        seen.append(sites[0])
    assert sorted(seen) == sorted(df["site"].unique())
    pipe = make_pipeline(
        ComBatHarmonizer(covariates=["age", "sex"], unseen_site="estimate"),
        LogisticRegression(),
    )
    # each held-out site is new: estimated with the protected target at the
    # training centre, which the harmonizer says at transform
    with pytest.warns(MedprepWarning, match="new site"):
        res = cross_validate(
            pipe, df.drop(columns="y"), df["y"], cv=cv, error_score="raise"
        )
    assert np.isfinite(res["test_score"]).all()
    with pytest.raises(ValueError, match="at least 2 sites"):
        next(cv.split(pd.DataFrame({"site": ["a"] * 4})))


def test_stratified_minority_class_is_spread_over_folds():
    # three sites with the same class layout: the positives must not all land
    # in the same test fold (a one-class test fold breaks ROC AUC)
    sites = np.repeat(list("ABC"), 4)
    y = np.array([0, 0, 0, 1] * 3)
    cv = SiteStratifiedKFold(2, stratify_y=True)
    positives = [y[test].sum() for _, test in cv.split(np.zeros((12, 1)), y, sites)]
    assert sorted(positives) == [1, 2]


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(6, 25), min_size=2, max_size=5),
    k=st.integers(2, 3),
    seed=st.integers(0, 10_000),
)
def test_site_and_class_cells_balanced_property(sizes, k, seed):
    rng = np.random.default_rng(seed)
    sites = np.repeat(np.arange(len(sizes)), sizes)
    y = (rng.uniform(size=sites.size) < 0.3).astype(int)
    cv = SiteStratifiedKFold(k, stratify_y=True, shuffle=True, random_state=seed)
    folds = list(cv.split(np.zeros((sites.size, 1)), y, sites))
    assert sorted(np.concatenate([test for _, test in folds])) == list(
        range(sites.size)
    )
    for train, _ in folds:
        assert set(sites[train]) == set(sites)
    for s in np.unique(sites):
        for c in (None, 0, 1):
            cell = (sites == s) if c is None else (sites == s) & (y == c)
            per_fold = [cell[test].sum() for _, test in folds]
            assert max(per_fold) - min(per_fold) <= 1, (s, c, per_fold)
