"""SiteStratifiedGroupKFold: subjects whole, sites stratified (issue 20)."""

import numpy as np
import pandas as pd
import pytest
import sklearn
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (
    GridSearchCV,
    StratifiedGroupKFold,
    cross_validate,
)
from sklearn.pipeline import make_pipeline
from subject_tables import (
    LeakMeter,
    assert_partition,
    assert_sites_stratified,
    numeric,
    overlaps,
    roi_table,
)

from sklearn_medprep import ComBatHarmonizer
from sklearn_medprep.datasets import make_multisite_features
from sklearn_medprep.exceptions import SubjectOverlapWarning, SubjectTableError
from sklearn_medprep.model_selection import (
    SiteStratifiedGroupKFold,
    SiteStratifiedKFold,
)


def test_issue_case_rows_leak_subjects_do_not():
    X, y = roi_table()
    with pytest.warns(SubjectOverlapWarning, match="20 of 20 subjects") as record:
        row_folds = list(SiteStratifiedKFold(5).split(X))
    message = str(record[0].message)
    assert "'subject' column" in message and "SiteStratifiedGroupKFold" in message
    assert "subject 's00'" in message
    leaks = overlaps(row_folds, X["subject"])
    assert sum(leaks) == 60  # every subject in 3 test folds, 5 splits
    # the count the warning quotes is the one computed here
    assert f"({sum(leaks)} subject-split overlaps" in message

    cv = SiteStratifiedGroupKFold(5)
    folds = list(cv.split(X, y))
    assert len(folds) == cv.get_n_splits() == 5
    assert_partition(folds, len(X))
    assert overlaps(folds, X["subject"]) == [0] * 5
    assert_sites_stratified(folds, X, 5)


@pytest.mark.parametrize("stratify_y", [False, True])
@pytest.mark.parametrize("shuffle, seed", [(False, None), (True, 3)])
def test_issue_case_shuffled_and_stratified(stratify_y, shuffle, seed):
    X, y = roi_table(n_subjects=40, n_rois=3, seed=1)
    with pytest.warns(SubjectOverlapWarning):
        leaks = overlaps(
            SiteStratifiedKFold(
                4, stratify_y=stratify_y, shuffle=shuffle, random_state=seed
            ).split(X, y),
            X["subject"],
        )
    assert sum(leaks) > 0
    cv = SiteStratifiedGroupKFold(
        4, stratify_y=stratify_y, shuffle=shuffle, random_state=seed
    )
    folds = list(cv.split(X, y))
    assert_partition(folds, len(X))
    assert overlaps(folds, X["subject"]) == [0] * 4
    assert_sites_stratified(folds, X, 4)
    if stratify_y:
        subjects = X.assign(y=y).groupby("subject").first()
        for (site, label), cell in subjects.groupby(["site", "y"]):
            per_fold = [
                np.isin(cell.index, X["subject"].iloc[te]).sum() for _, te in folds
            ]
            assert max(per_fold) - min(per_fold) <= 1, (site, label, per_fold)


@pytest.mark.parametrize("stratify_y", [False, True])
@pytest.mark.parametrize("shuffle, seed", [(False, None), (True, 0)])
def test_one_row_per_subject_gives_site_stratified_kfold(stratify_y, shuffle, seed):
    df = make_multisite_features(
        n_subjects=0, n_features=2, site_sizes=[31, 9, 17, 6], random_state=0
    )
    params = dict(n_splits=3, stratify_y=stratify_y, shuffle=shuffle, random_state=seed)
    rows = list(SiteStratifiedKFold(**params).split(df, df["y"]))
    by_groups = SiteStratifiedGroupKFold(**params).split(
        df, df["y"], groups=np.arange(len(df))
    )
    by_index = SiteStratifiedGroupKFold(subject=None, **params).split(df, df["y"])
    for (tr, te), (tr_g, te_g), (_, te_i) in zip(rows, by_groups, by_index):
        np.testing.assert_array_equal(te, te_g)
        np.testing.assert_array_equal(tr, tr_g)
        np.testing.assert_array_equal(te, te_i)


def test_repeated_visits_by_index_or_column():
    X, _ = roi_table(n_subjects=24, n_rois=2, sites="ABC", seed=2)
    visits = X.set_index("subject")  # two visits per subject, index repeats
    with pytest.warns(SubjectOverlapWarning, match="repeated index of X"):
        leaks = overlaps(SiteStratifiedKFold(4).split(visits), visits.index)
    assert sum(leaks) > 0
    folds = list(SiteStratifiedGroupKFold(4, subject=None).split(visits))
    assert overlaps(folds, visits.index) == [0] * 4
    assert_sites_stratified(folds, X, 4)
    # the same folds from the column or from groups=
    from_column = list(SiteStratifiedGroupKFold(4).split(X))
    from_groups = list(
        SiteStratifiedGroupKFold(4, subject="nope").split(X, groups=X["subject"])
    )
    for (_, a), (_, b), (_, c) in zip(folds, from_column, from_groups):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    # a named column the table lacks is refused, never read as "one row each"
    with pytest.raises(SubjectTableError, match=r"column 'patient'.*subject=None"):
        next(SiteStratifiedGroupKFold(4, subject="patient").split(X))


def test_travelling_subject_stays_whole():
    X, _ = roi_table(n_subjects=20, n_rois=3, sites="ABCD", seed=0)
    # s02 (site A) was scanned once more at site B
    extra = X.loc[["s02|1"]].assign(site="B")
    extra.index = ["s02|B"]
    X = pd.concat([X, extra])
    cv = SiteStratifiedGroupKFold(5)
    folds = list(cv.split(X))
    assert_partition(folds, len(X))
    assert overlaps(folds, X["subject"]) == [0] * 5
    held = [te for _, te in folds if "s02" in set(X["subject"].iloc[te])]
    assert len(held) == 1 and {"s02|1", "s02|2", "s02|3", "s02|B"} <= set(
        X.index[held[0]]
    )
    # dealt with A (3 of its 4 rows): A's shares are exact, B's off by one
    for site, expected in [("A", {1}), ("B", {1, 2})]:
        counts = {
            X["subject"].iloc[te][X["site"].iloc[te] == site].nunique()
            for _, te in folds
        }
        assert counts <= expected, (site, counts)


def test_too_few_subjects_per_site_names_the_site():
    X, _ = roi_table(n_subjects=20, n_rois=3, sites="ABCD")
    X = X[~X["subject"].isin(["s19"])]  # site D keeps 4 subjects, 12 rows
    with pytest.raises(SubjectTableError, match=r"site 'D' has 4 subject\(s\)"):
        next(SiteStratifiedGroupKFold(5).split(X))
    # 4 subjects, 3 folds: a training fold keeps 2; 3 subjects in 2 folds keep 1
    assert len(list(SiteStratifiedGroupKFold(3).split(X))) == 3
    X = X[~X["subject"].isin(["s18"])]
    with pytest.raises(SubjectTableError, match=r"site 'D' has 3 subject") as info:
        next(SiteStratifiedGroupKFold(2).split(X))
    assert info.value.column == "site"
    # a site whose rows all belong to a traveller dealt elsewhere has no subjects
    X, _ = roi_table(n_subjects=20, n_rois=3, sites="ABCD")
    X = pd.concat([X, X.loc[["s00|1"]].assign(site="E").set_axis(["s00|E"])])
    with pytest.raises(SubjectTableError, match="site 'E' has 0 subject.*travelling"):
        next(SiteStratifiedGroupKFold(2).split(X))


def test_bad_input_is_named():
    X, y = roi_table()
    cv = SiteStratifiedGroupKFold(5)
    with pytest.raises(ValueError, match="needs the subject of each row"):
        next(cv.split(X[["f0", "f1"]].to_numpy(), sites=X["site"]))
    with pytest.raises(ValueError, match="sites is None"):
        next(cv.split(X[["f0", "f1"]].to_numpy(), groups=X["subject"]))
    holes = X.assign(subject=X["subject"].where(X.index != "s04|2"))
    with pytest.raises(SubjectTableError, match=r"row 's04\|2', column 'subject'"):
        next(cv.split(holes))
    groups = X["subject"].to_numpy(dtype=object, copy=True)
    groups[7] = None
    with pytest.raises(SubjectTableError, match=r"row 's02\|2'.*missing in groups"):
        next(cv.split(X, groups=groups))
    # the old habit (groups= the sites) is named, not read as one subject a site
    with pytest.raises(SubjectTableError, match="groups look like sites"):
        next(cv.split(X, groups=X["site"]))
    with pytest.raises(ValueError, match="groups has 3 values for 60 rows"):
        next(cv.split(X, groups=["a", "b", "c"]))
    with pytest.raises(ValueError, match="needs y"):
        next(SiteStratifiedGroupKFold(5, stratify_y=True).split(X))
    with pytest.raises(ValueError, match="shuffle is False"):
        next(SiteStratifiedGroupKFold(5, random_state=0).split(X))
    with pytest.raises(ValueError, match="n_splits must be an integer >= 2"):
        next(SiteStratifiedGroupKFold(1).split(X))


def test_repr_and_n_splits():
    cv = SiteStratifiedGroupKFold(n_splits=4, subject="patient")
    assert repr(cv) == (
        "SiteStratifiedGroupKFold(n_splits=4, random_state=None, shuffle=False,\n"
        "             site='site', stratify_y=False, subject='patient')"
    )
    assert cv.get_n_splits() == cv.get_n_splits(np.zeros((3, 1)), sites=[1]) == 4


def test_one_site_folds_are_valid_group_folds_like_sklearn():
    # with one site the splitter is a stratified group K-fold: compare with
    # scikit-learn's on its own terms (partition, no group in two test folds)
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 5, size=23)
    groups = np.repeat(np.arange(23), sizes)
    subject_class = (rng.uniform(size=23) < 0.35).astype(int)
    y = subject_class[groups]
    X = np.zeros((groups.size, 1))
    ours = list(
        SiteStratifiedGroupKFold(4, stratify_y=True).split(
            X, y, groups, sites=np.zeros(groups.size)
        )
    )
    theirs = list(StratifiedGroupKFold(4).split(X, y, groups))
    for folds in (ours, theirs):
        assert_partition(folds, groups.size)
        assert overlaps(folds, groups) == [0] * 4

    def class_spread(folds):
        per_fold = np.array(
            [
                np.bincount(subject_class[np.unique(groups[te])], minlength=2)
                for _, te in folds
            ]
        )
        return per_fold.max(axis=0) - per_fold.min(axis=0)

    # each class's subjects dealt within one over the folds: never worse
    assert (class_spread(ours) <= 1).all()
    assert (class_spread(ours) <= class_spread(theirs)).all()


def test_cross_validate_and_grid_search_with_groups():
    X, y = roi_table()
    cv = SiteStratifiedGroupKFold(5, shuffle=True, random_state=0)
    expected = [te for _, te in cv.split(X, y)]
    # groups= the subjects (here also a column); the sites from the column
    res = cross_validate(
        LeakMeter(), X, y, groups=X["subject"], cv=cv, return_indices=True
    )
    for a, b in zip(res["indices"]["test"], expected):
        np.testing.assert_array_equal(a, b)
    assert (res["test_score"] == 0).all()
    search = GridSearchCV(LeakMeter(), {"c": [0, 1]}, cv=cv)
    search.fit(X, y, groups=X["subject"])
    assert search.n_splits_ == 5
    assert (search.cv_results_["mean_test_score"] == 0).all()
    # the row-wise splitter leaks: the same meter sees every test row's subject
    with pytest.warns(SubjectOverlapWarning):
        leaky = GridSearchCV(LeakMeter(), {"c": [0]}, cv=SiteStratifiedKFold(5))
        leaky.fit(X, y)
    assert leaky.cv_results_["mean_test_score"][0] == 1.0


def test_metadata_routing_groups_and_sites():
    X, y = roi_table()
    Xn = numeric(X)
    cv = SiteStratifiedGroupKFold(5)
    expected = [te for _, te in cv.split(X, y)]
    with sklearn.config_context(enable_metadata_routing=True):
        res = cross_validate(
            LeakMeter(),
            Xn,
            y,
            cv=cv,
            params={"groups": X["subject"], "sites": X["site"]},
            return_indices=True,
            error_score="raise",
        )
        search = GridSearchCV(LeakMeter(), {"c": [0, 1]}, cv=cv)
        search.fit(Xn, y, groups=X["subject"].to_numpy(), sites=X["site"].to_numpy())
        # a pipeline that reads the site column itself; only groups routed
        pipe = make_pipeline(
            ComBatHarmonizer(features=["f0", "f1"]), LogisticRegression()
        )
        scored = cross_validate(
            pipe,
            X.drop(columns="subject"),
            y,
            cv=cv,
            params={"groups": X["subject"]},
            return_indices=True,
            error_score="raise",
        )
        # no site column: one routed ``sites`` reaches the splitter and ComBat
        combat = (
            ComBatHarmonizer(features=["f0", "f1"])
            .set_fit_request(sites=True)
            .set_transform_request(sites=True)
        )
        routed = cross_validate(
            make_pipeline(combat, LogisticRegression()),
            X.drop(columns=["subject", "site"]),
            y,
            cv=cv,
            params={"groups": X["subject"], "sites": X["site"]},
            return_indices=True,
            error_score="raise",
        )
    for a, b, c in zip(res["indices"]["test"], scored["indices"]["test"], expected):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, c)
    for a, c in zip(routed["indices"]["test"], expected):
        np.testing.assert_array_equal(a, c)
    assert (res["test_score"] == 0).all()
    assert (search.cv_results_["mean_test_score"] == 0).all()
    assert np.isfinite(scored["test_score"]).all()
    np.testing.assert_allclose(routed["test_score"], scored["test_score"])


@settings(max_examples=30, deadline=None)
@given(
    site_subjects=st.lists(st.integers(6, 14), min_size=1, max_size=4),
    k=st.integers(2, 3),
    seed=st.integers(0, 10_000),
    stratify_y=st.booleans(),
)
def test_subjects_whole_and_sites_balanced_property(site_subjects, k, seed, stratify_y):
    rng = np.random.default_rng(seed)
    n_subjects = sum(site_subjects)
    home = np.repeat(np.arange(len(site_subjects)), site_subjects)
    n_rows = rng.integers(1, 5, size=n_subjects)
    subject = np.repeat(np.arange(n_subjects), n_rows)
    site = home[subject].copy()
    # a few travellers: one of their 3 rows at another site
    if len(site_subjects) > 1:
        for s in rng.choice(n_subjects, size=2, replace=False):
            if n_rows[s] == 3:  # its home keeps the majority of its rows
                row = np.flatnonzero(subject == s)[0]
                site[row] = (home[s] + 1) % len(site_subjects)
    y = (rng.uniform(size=n_subjects) < 0.3).astype(int)[subject]
    order = rng.permutation(subject.size)  # rows in any order
    subject, site, y = subject[order], site[order], y[order]
    cv = SiteStratifiedGroupKFold(
        k, stratify_y=stratify_y, shuffle=True, random_state=seed
    )
    folds = list(cv.split(np.zeros((subject.size, 1)), y, subject, sites=site))
    assert_partition(folds, subject.size)
    assert overlaps(folds, subject) == [0] * k
    for s in range(len(site_subjects)):
        per_fold = [
            np.isin(np.flatnonzero(home == s), subject[te]).sum() for _, te in folds
        ]
        assert max(per_fold) - min(per_fold) <= 1, (s, per_fold)
        for tr, _ in folds:
            assert (site[tr] == s).sum() >= 2


def _fcon1000_hemispheres(path):
    """FCON1000 cortical thickness, one row per (subject, hemisphere)."""
    table = pd.read_csv(path)
    thickness = [
        c[3:] for c in table.columns if c.startswith("lh_") and c.endswith("_thickness")
    ]
    parts = []
    for hemi in ("lh", "rh"):
        part = table[["sub_id", "site", "age"]].rename(columns={"sub_id": "subject"})
        part = part.assign(**{c: table[f"{hemi}_{c}"].to_numpy() for c in thickness})
        part.index = table["sub_id"] + "|" + hemi
        parts.append(part)
    return pd.concat(parts), thickness


@pytest.mark.slow
@pytest.mark.shared_data
def test_fcon1000_one_row_per_hemisphere(shared_data):
    """Real per-ROI table: rows leak (1-NN age R2 inflated), subjects do not."""
    from sklearn.metrics import r2_score
    from sklearn.neighbors import KNeighborsRegressor

    long, features = _fcon1000_hemispheres(
        shared_data / "multisite" / "pcn_fcon1000.csv"
    )
    with pytest.raises(SubjectTableError, match="site 'Pittsburgh' has 3 subject"):
        next(SiteStratifiedGroupKFold(5).split(long))
    long = long[long["site"] != "Pittsburgh"]
    y = long["age"].to_numpy()
    scores = {}
    for name, cv in [
        ("rows", SiteStratifiedKFold(5, shuffle=True, random_state=0)),
        ("subjects", SiteStratifiedGroupKFold(5, shuffle=True, random_state=0)),
    ]:
        if name == "rows":
            with pytest.warns(SubjectOverlapWarning) as record:
                folds = list(cv.split(long))
            print(record[0].message)
        else:
            folds = list(cv.split(long))
            assert_sites_stratified(folds, long, 5)
        leaks = overlaps(folds, long["subject"])
        pred = np.empty_like(y)
        for train, test in folds:
            model = KNeighborsRegressor(1).fit(long[features].iloc[train], y[train])
            pred[test] = model.predict(long[features].iloc[test])
        scores[name] = r2_score(y, pred)
        print(
            f"FCON1000 hemispheres ({len(long)} rows, {long['subject'].nunique()} "
            f"subjects, {long['site'].nunique()} sites), {type(cv).__name__}: "
            f"subject-split overlaps {sum(leaks)}, "
            f"1-NN age R2 {scores[name]:.2f}"
        )
        assert (sum(leaks) > 0) == (name == "rows")
    # the nearest neighbour of a test hemisphere is often its own other hemisphere
    assert scores["rows"] > scores["subjects"] + 0.1
