"""Issue 21, QC area: cohort_report names what is wrong instead of crashing."""

import numpy as np
import pandas as pd
import pytest

from sklearn_medprep import cohort_report
from sklearn_medprep.exceptions import SubjectTableError


def _table(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "site": np.repeat(["A", "B"], n // 2),
            "age": rng.uniform(20, 80, n),
            "sex": rng.choice(["F", "M"], n),
            "dx": rng.integers(0, 2, n),
            "score": rng.normal(size=n),
        },
        index=[f"sub-{i:02d}" for i in range(n)],
    )


def _all_nan(column):
    def build():
        table = _table()
        table[column] = np.nan
        return table

    return build


def _constant(column, value):
    def build():
        return _table().assign(**{column: value})

    return build


FAULTS = [
    # name, table, kwargs, column named, message
    (
        "all-NaN covariate",
        _all_nan("age"),
        dict(covariates=["age", "sex"]),
        "age",
        "the covariate column has no value in any of the 40 rows (all missing)",
    ),
    (
        "all-NaN protected attribute",
        _all_nan("sex"),
        dict(protected=["sex"]),
        "sex",
        "the protected attribute column has no value in any of the 40 rows",
    ),
    (
        "all-NaN target",
        _all_nan("dx"),
        dict(),
        "dx",
        "the target column has no value in any of the 40 rows",
    ),
    (
        "constant class target",
        _constant("dx", 1),
        dict(covariates=["age"]),
        "dx",
        "the target takes a single value (1) in every row with a site: there "
        "is nothing to predict",
    ),
    (
        "constant continuous target",
        _constant("score", 2.5),
        dict(target="score"),
        "score",
        "the target takes a single value (2.5) in every row with a site",
    ),
]


@pytest.mark.parametrize(
    "build, kwargs, column, message",
    [case[1:] for case in FAULTS],
    ids=[case[0] for case in FAULTS],
)
def test_refused_naming_the_column(build, kwargs, column, message):
    kwargs = {"site": "site", "target": "dx", **kwargs}
    with pytest.raises(SubjectTableError) as info:
        cohort_report(build(), **kwargs)
    assert info.value.column == column and info.value.row is None
    assert str(info.value).startswith(f"[column {column!r}] {message}")
    assert "fits failed" not in str(info.value)


def test_single_site_is_a_finding():
    table = _table().assign(site="A")
    report = cohort_report(table, site="site", target="dx", covariates=["age"])
    single = [f for f in report.findings if f.code == "single_site"]
    assert [(f.severity, f.message) for f in single] == [
        (
            "warning",
            "All 40 subjects come from one site ('A'): site effects cannot be "
            "measured or harmonized (ComBat needs two sites or more), and a "
            "model validated on this cohort says nothing about other sites.",
        )
    ]
    assert report.n_sites == 1
    # two sites: no such finding
    two = cohort_report(_table(), site="site", target="dx", covariates=["age"])
    assert "single_site" not in two.codes
