"""Tables with several rows per subject, and the checks the splitter tests share."""

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator


def roi_table(n_subjects=20, n_rois=3, sites="ABCD", seed=0):
    """The issue's case: one row per (subject, ROI), index "s01|1"."""
    rng = np.random.default_rng(seed)
    subjects = [f"s{i:02d}" for i in range(n_subjects)]
    per_site = n_subjects // len(sites)
    site_of = {s: sites[i // per_site] for i, s in enumerate(subjects)}
    y_of = {s: int(rng.uniform() < 0.4) for s in subjects}
    subject = np.repeat(subjects, n_rois)
    roi = np.tile(np.arange(1, n_rois + 1), n_subjects)
    X = pd.DataFrame(
        {
            "subject": subject,
            "site": [site_of[s] for s in subject],
            "age": rng.uniform(20, 80, subject.size),
            "f0": rng.normal(size=subject.size),
            "f1": rng.normal(size=subject.size),
        },
        index=[f"{s}|{r}" for s, r in zip(subject, roi)],
    )
    y = pd.Series([y_of[s] for s in subject], index=X.index, name="y")
    return X, y


def overlaps(folds, subjects):
    """Subjects with rows in the training and the test rows, split by split."""
    subjects = np.asarray(subjects)
    return [len(set(subjects[tr]) & set(subjects[te])) for tr, te in folds]


def assert_partition(folds, n):
    tests = np.concatenate([te for _, te in folds])
    assert np.array_equal(np.sort(tests), np.arange(n))
    for tr, te in folds:
        assert np.array_equal(np.sort(np.concatenate([tr, te])), np.arange(n))


def assert_sites_stratified(folds, X, k):
    """Each test fold holds each site's subjects within one of n / k."""
    for site, rows in X.groupby("site"):
        n = rows["subject"].nunique()
        for tr, te in folds:
            held = X.iloc[te]
            count = held.loc[held["site"] == site, "subject"].nunique()
            assert np.floor(n / k) <= count <= np.ceil(n / k), (site, count, n)
            assert (X["site"].iloc[tr] == site).sum() >= 2


class LeakMeter(BaseEstimator):
    """Scores the share of test rows whose subject (column 0) it was fitted on."""

    def __init__(self, c=0):
        self.c = c

    def fit(self, X, y=None):
        self.seen_ = set(np.asarray(X)[:, 0])
        return self

    def score(self, X, y=None):
        return float(np.mean([s in self.seen_ for s in np.asarray(X)[:, 0]]))


def numeric(X):
    """The table as numbers: subject code first, then the features."""
    return np.column_stack([pd.factorize(X["subject"])[0], X[["f0", "f1"]].to_numpy()])
