"""Subjects on both sides of a split: the warning, LeaveOneSiteOut, subject_overlap."""

import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.model_selection import GroupKFold, KFold, cross_validate
from subject_tables import LeakMeter, overlaps, roi_table

from sklearn_medprep.exceptions import SubjectOverlapWarning, SubjectTableError
from sklearn_medprep.model_selection import (
    LeaveOneSiteOut,
    SiteStratifiedGroupKFold,
    SiteStratifiedKFold,
    subject_overlap,
)


def test_one_row_per_subject_does_not_warn():
    X, _ = roi_table(n_rois=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(list(SiteStratifiedKFold(5).split(X))) == 5
        assert len(list(LeaveOneSiteOut().split(X))) == 4


def test_warning_reads_the_column_else_a_repeated_index():
    X, _ = roi_table()
    # subject=None: the column is not read and the index ("s00|1") is unique
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        list(SiteStratifiedKFold(5, subject=None).split(X))
    renamed = X.rename(columns={"subject": "patient"})
    with pytest.warns(SubjectOverlapWarning, match="'patient' column"):
        list(SiteStratifiedKFold(5, subject="patient").split(renamed))
    # without the column, a repeated index is read
    visits = X.set_index("subject")
    with pytest.warns(SubjectOverlapWarning, match="repeated index") as record:
        folds = list(SiteStratifiedKFold(5, subject=None).split(visits))
    n = sum(len(set(visits.index[tr]) & set(visits.index[te])) for tr, te in folds)
    assert f"({n} subject-split overlaps" in str(record[0].message)
    # groups= (the sites) of a plain array carry no subjects: nothing to read
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        list(SiteStratifiedKFold(5).split(X[["f0"]].to_numpy(), groups=X["site"]))


def test_warning_only_when_a_subject_straddles():
    # each site's rows are dealt to folds 0, 1, 0, 1: subjects laid out a, b, a, b
    # stay whole by chance (no leak, no warning); a, a, b, b straddle
    site = np.repeat(list("xyz"), 4)
    whole = pd.DataFrame({"subject": np.char.add(["a", "b", "a", "b"] * 3, site)})
    whole["site"] = site
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        folds = list(SiteStratifiedKFold(2).split(whole))
    assert overlaps(folds, whole["subject"]) == [0, 0]
    split = whole.assign(subject=np.char.add(["a", "a", "b", "b"] * 3, site))
    with pytest.warns(SubjectOverlapWarning, match="6 of 6 subjects"):
        folds = list(SiteStratifiedKFold(2).split(split))
    assert overlaps(folds, split["subject"]) == [6, 6]


def test_leave_one_site_out_refuses_a_travelling_subject():
    X, y = roi_table()
    cv = LeaveOneSiteOut()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = [te for _, te in cv.split(X)]
    assert [sorted(set(X["site"].iloc[te])) for te in plain] == [[s] for s in "ABCD"]
    travel = pd.concat([X, X.loc[["s02|1"]].assign(site="C").set_axis(["s02|C"])])
    with pytest.raises(
        SubjectTableError, match="subject 's02' has rows at sites 'A' and 'C'"
    ) as info:
        next(cv.split(travel))
    assert info.value.column == "subject" and info.value.row == "s02|1"
    assert "SiteStratifiedGroupKFold" in str(info.value)
    # routed subjects= take precedence over the column
    with pytest.raises(SubjectTableError, match="'s02'.*read from subjects"):
        next(cv.split(travel.drop(columns="subject"), subjects=travel["subject"]))
    assert len(list(cv.split(travel, subjects=np.arange(len(travel))))) == 4
    # no subject information but a repeated index: a warning (it may be pd.concat's)
    with pytest.warns(
        SubjectOverlapWarning, match="'s02' has rows at sites 'A' and 'C'"
    ):
        folds = list(LeaveOneSiteOut(subject=None).split(travel.set_index("subject")))
    assert len(folds) == 4
    # the splits themselves are unchanged
    for (_, a), b in zip(LeaveOneSiteOut(subject=None).split(X), plain):
        np.testing.assert_array_equal(a, b)


def test_missing_subject_or_no_rows_is_named():
    X, _ = roi_table()
    holes = X.assign(subject=X["subject"].where(X.index != "s07|3"))
    with pytest.raises(
        SubjectTableError, match=r"row 's07\|3', column 'subject'.*subject=None"
    ):
        next(LeaveOneSiteOut().split(holes))
    assert len(list(LeaveOneSiteOut(subject=None).split(holes))) == 4
    for cv in (SiteStratifiedKFold(2), SiteStratifiedGroupKFold(2)):
        with pytest.raises(ValueError, match="no rows"):
            next(cv.split(X.iloc[:0]))


def test_leave_one_site_out_routes_subjects():
    X, y = roi_table()
    cv = LeaveOneSiteOut()
    assert cv.get_metadata_routing().split.requests == {
        "groups": True,
        "subjects": True,
    }
    travel = pd.concat([X, X.loc[["s02|1"]].assign(site="C").set_axis(["s02|C"])])
    codes = pd.factorize(travel["subject"])[0]
    Xn = np.column_stack([codes, travel[["f0"]].to_numpy()])
    with sklearn.config_context(enable_metadata_routing=True):
        res = cross_validate(
            LeakMeter(), Xn, None, cv=cv, params={"groups": travel["site"]}
        )
        assert res["test_score"].max() > 0  # s02's row at C was seen in training
        with pytest.raises(SubjectTableError, match=r"\[row 6\] subject 2 has rows"):
            cross_validate(
                LeakMeter(),
                Xn,
                None,
                cv=cv,
                params={"groups": travel["site"], "subjects": codes},
            )
        res = cross_validate(
            LeakMeter(),
            Xn[: len(X)],
            None,
            cv=cv,
            params={"groups": X["site"], "subjects": codes[: len(X)]},
        )
    assert (res["test_score"] == 0).all()


def test_subject_overlap_counts_against_sets():
    X, _ = roi_table()
    table = subject_overlap(KFold(4, shuffle=True, random_state=0), X)
    assert list(table.columns) == [
        "n_train_subjects",
        "n_test_subjects",
        "n_overlap",
        "n_overlap_test_rows",
        "example",
    ]
    s = X["subject"].to_numpy()
    for (tr, te), (_, row) in zip(
        KFold(4, shuffle=True, random_state=0).split(X), table.iterrows()
    ):
        both = set(s[tr]) & set(s[te])
        assert row["n_train_subjects"] == len(set(s[tr]))
        assert row["n_test_subjects"] == len(set(s[te]))
        assert row["n_overlap"] == len(both) > 0
        assert row["n_overlap_test_rows"] == sum(v in both for v in s[te])
        assert row["example"] in both
    # an array of ids, the index, and the splitter's own groups
    ids = subject_overlap(GroupKFold(4), X, groups=s, subject=s)
    assert (ids["n_overlap"] == 0).all() and ids["example"].isna().all()
    visits = X.set_index("subject")
    by_index = subject_overlap(
        SiteStratifiedGroupKFold(4, subject=None), visits, subject=None
    )
    assert (by_index["n_overlap"] == 0).all()
    routed = subject_overlap(
        SiteStratifiedGroupKFold(4),
        X[["f0"]].to_numpy(),
        groups=s,
        subject=s,
        params={"sites": X["site"]},
    )
    assert (routed["n_overlap"] == 0).all() and len(routed) == 4
    with pytest.raises(SubjectTableError, match="column 'patient'"):
        subject_overlap(KFold(2), X, subject="patient")
