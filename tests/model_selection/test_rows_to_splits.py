"""The seam between rows per ROI/lesion and the splitters: the subject travels.

``expand_labels`` writes each row's subject into a ``subject`` column, and
``SiteStratifiedGroupKFold`` reads that column by default: no ``groups=`` is
needed for the subjects to stay whole, and ``SiteStratifiedKFold`` on the same
table warns that subjects straddle its splits.
"""

import numpy as np
import pandas as pd
import pytest

from sklearn_medprep import expand_labels
from sklearn_medprep.exceptions import SubjectOverlapWarning
from sklearn_medprep.model_selection import (
    SiteStratifiedGroupKFold,
    SiteStratifiedKFold,
    subject_overlap,
)


@pytest.fixture
def rows():
    subjects = pd.Index([f"sub-{i:03d}" for i in range(20)], name="participant")
    table = pd.DataFrame(
        {
            "image": [f"{s}_t1.nii.gz" for s in subjects],
            "mask": [f"{s}_seg.nii.gz" for s in subjects],
            "site": np.repeat(list("ABCD"), 5),
        },
        index=subjects,
    )
    return expand_labels(table, [1, 2, 3])


def test_expanded_rows_split_by_subject_without_groups(rows):
    assert rows["subject"].nunique() == 20 and len(rows) == 60
    cv = SiteStratifiedGroupKFold(5, shuffle=True, random_state=0)
    counts = subject_overlap(cv, rows)
    assert counts["n_overlap"].tolist() == [0] * 5
    for _, test in cv.split(rows):
        # one subject of every site in every test fold: 3 rows per site
        assert rows["site"].iloc[test].value_counts().to_dict() == dict.fromkeys(
            "ABCD", 3
        )


def test_expanded_rows_warn_with_the_row_splitter(rows):
    with pytest.warns(SubjectOverlapWarning, match="sub-"):
        counts = subject_overlap(SiteStratifiedKFold(5), rows)
    assert counts["n_overlap"].sum() > 0
