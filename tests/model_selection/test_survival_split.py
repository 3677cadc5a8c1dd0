"""Site splitters stratify a survival target (structured event/time) on its event."""

import numpy as np
import pandas as pd
import pytest
from subject_tables import assert_partition, overlaps, roi_table

from sklearn_medprep.model_selection import (
    SiteStratifiedGroupKFold,
    SiteStratifiedKFold,
)


def _survival(event, seed=0):
    rng = np.random.default_rng(seed)
    y = np.empty(len(event), dtype=[("event", bool), ("time", np.float64)])
    y["event"] = event
    y["time"] = rng.exponential(10, len(event))  # distinct times
    return y


@pytest.mark.parametrize("shuffle, seed", [(False, None), (True, 3)])
def test_kfold_stratifies_on_the_event_indicator(shuffle, seed):
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"site": np.repeat(list("ABC"), [14, 20, 11]),
                      "f0": rng.normal(size=45)})
    event = rng.uniform(size=45) < 0.35
    y = _survival(event)
    cv = SiteStratifiedKFold(4, stratify_y=True, shuffle=shuffle, random_state=seed)
    folds = list(cv.split(X, y))
    # the folds of the event indicator itself (not of 45 distinct (event, time))
    reference = list(cv.split(X, event))
    for (tr, te), (rtr, rte) in zip(folds, reference):
        np.testing.assert_array_equal(te, rte)
        np.testing.assert_array_equal(tr, rtr)
    assert_partition(folds, len(X))
    for site in "ABC":
        counts = [int(event[te][X["site"].to_numpy()[te] == site].sum())
                  for _, te in folds]
        assert max(counts) - min(counts) <= 1, (site, counts)


def test_group_kfold_stratifies_subjects_on_their_event():
    X, labels = roi_table(n_subjects=40, n_rois=3, seed=1)
    y = _survival(labels.to_numpy().astype(bool))
    cv = SiteStratifiedGroupKFold(4, stratify_y=True)
    folds = list(cv.split(X, y))
    reference = list(cv.split(X, labels.to_numpy().astype(bool)))
    for (_, te), (_, rte) in zip(folds, reference):
        np.testing.assert_array_equal(te, rte)
    assert overlaps(folds, X["subject"]) == [0] * 4
    subjects = X.assign(event=y["event"]).groupby("subject").first()
    for _, cell in subjects.groupby(["site", "event"]):
        held = [len(set(X["subject"].iloc[te]) & set(cell.index)) for _, te in folds]
        assert max(held) - min(held) <= 1
