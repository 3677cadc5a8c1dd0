"""The one rule for "is this column numeric" (table._checks), and its users agree.

ComBat (features and covariates), the site-effect QC and the cohort report all
decide with :func:`sklearn_medprep.table._checks.is_numeric_column`.
"""

import numpy as np
import pandas as pd
import pytest

from sklearn_medprep.exceptions import SubjectTableError
from sklearn_medprep.harmonization import ComBatHarmonizer
from sklearn_medprep.harmonization._design import is_numeric_dtypes
from sklearn_medprep.harmonization._input import _looks_numeric
from sklearn_medprep.qc import cohort_report, site_effect_report
from sklearn_medprep.qc._cohort_report import _is_categorical
from sklearn_medprep.table._checks import (
    is_numeric_column,
    is_numeric_dtype,
    numeric_columns,
    parses_as_numbers,
)

N = 20

# column -> the rule's answer (None: refused as ambiguous)
EXPECTED = {
    "float": True,
    "int": True,
    "uint": True,
    "bool": False,
    "boolean": False,
    "Int64_na": True,
    "Float64": True,
    "category": False,
    "category_of_numbers": False,
    "object_of_floats": None,
    "object_of_text": False,
    "object_of_numbers_as_text": False,
    "string": False,
    "str": False,
    "datetime": False,
    "timedelta": False,
    "complex": False,
}


def _table():
    rng = np.random.default_rng(0)
    floats = rng.normal(50, 10, N)
    return pd.DataFrame(
        {
            "site": np.repeat(["A", "B"], N // 2),
            "float": floats,
            "int": rng.integers(0, 100, N),
            "uint": rng.integers(0, 100, N).astype(np.uint16),
            "bool": rng.integers(0, 2, N).astype(bool),
            "boolean": pd.array(rng.integers(0, 2, N).astype(bool), dtype="boolean"),
            "Int64_na": pd.array(
                [*rng.integers(0, 100, N - 1).tolist(), None], dtype="Int64"
            ),
            "Float64": pd.array(rng.normal(size=N), dtype="Float64"),
            "category": pd.Categorical(rng.choice(["x", "y"], N)),
            "category_of_numbers": pd.Categorical(rng.choice([1, 2, 3], N)),
            "object_of_floats": np.array(floats.tolist(), dtype=object),
            "object_of_text": np.array(rng.choice(["x", "y"], N), dtype=object),
            "object_of_numbers_as_text": np.array(
                [f"{i:03d}" for i in range(N)], dtype=object
            ),
            "string": pd.array(rng.choice(["x", "y"], N), dtype="string"),
            "str": pd.Series(rng.choice(["x", "y"], N)).astype(str).to_numpy(),
            "datetime": pd.date_range("2020-01-01", periods=N),
            "timedelta": pd.to_timedelta(np.arange(N), unit="D"),
            "complex": rng.normal(size=N) + 1j,
        },
        index=[f"s{i}" for i in range(N)],
    )


@pytest.mark.parametrize("column", sorted(EXPECTED))
def test_rule_answers_each_dtype(column):
    col = _table()[column]
    if EXPECTED[column] is None:
        with pytest.raises(SubjectTableError, match="object dtype") as info:
            is_numeric_column(col)
        assert info.value.column == column
        assert "astype(float)" in str(info.value)
        assert not is_numeric_dtype(col.dtype)
        return
    assert is_numeric_column(col) is EXPECTED[column]
    # the dtype half agrees (object columns are looked at only by the column rule)
    assert is_numeric_dtype(col.dtype) is EXPECTED[column]
    assert bool(is_numeric_dtypes([col.dtype])[0]) is EXPECTED[column]


def test_edge_cases_of_object_columns():
    # missing cells aside, all numbers: ambiguous; all missing or empty: not numeric
    with pytest.raises(SubjectTableError, match="object dtype"):
        is_numeric_column(pd.Series([1.0, None, 3], dtype=object, name="age"))
    assert is_numeric_column(pd.Series([None, np.nan], dtype=object)) is False
    assert is_numeric_column(pd.Series([], dtype=object)) is False
    # numbers mixed with text or booleans are labels, not measurements
    assert is_numeric_column(pd.Series([1, "x"], dtype=object)) is False
    assert is_numeric_column(pd.Series([True, False], dtype=object)) is False


def test_numeric_columns_and_parses_as_numbers():
    table = _table().drop(columns="object_of_floats")
    expected = [c for c, v in EXPECTED.items() if v]
    assert numeric_columns(table) == expected
    without_int = [c for c in expected if c != "int"]
    assert numeric_columns(table, exclude=["int"]) == without_int
    with pytest.raises(SubjectTableError) as info:
        numeric_columns(_table())
    assert info.value.column == "object_of_floats"
    # text arrays from np.column_stack: parsed; booleans are not numbers
    assert parses_as_numbers(np.array(["23.4", "1", None], dtype=object))
    assert not parses_as_numbers(np.array(["23.4", "F"]))
    assert not parses_as_numbers(np.array([True, 1.0], dtype=object))
    assert not parses_as_numbers(np.array([True, False]))
    assert _looks_numeric(["1.5", 2]) and not _looks_numeric([True, False])


def test_combat_qc_and_cohort_report_agree():
    full = _table()
    table = full.drop(columns="object_of_floats")
    numeric = [c for c, v in EXPECTED.items() if v]
    # ComBat harmonizes exactly the numeric columns
    features = [c for c in table.columns if c not in ("complex", "timedelta")]
    combat = ComBatHarmonizer(site="site").fit(table[features])
    assert list(combat.features_) == numeric
    # the site-effect report covers exactly the numeric columns
    report = site_effect_report(table, table, "site")
    assert list(report.index) == numeric
    # the cohort report: continuous exactly when numeric (max_levels=0: no
    # numeric column is taken as categorical for its few levels)
    for column in EXPECTED:
        if EXPECTED[column] is None:
            continue
        assert _is_categorical(table[column].dropna(), 0) is (not EXPECTED[column])
    # and all three refuse the ambiguous object column, naming it
    refusals = [
        lambda: ComBatHarmonizer(site="site", covariates=["object_of_floats"]).fit(
            full[["site", "float", "object_of_floats"]]
        ),
        lambda: ComBatHarmonizer(site="site", features=["object_of_floats"]).fit(full),
        lambda: site_effect_report(full, full, "site"),
        lambda: site_effect_report(full, full, "site", ["object_of_floats"]),
        lambda: cohort_report(
            full, site="site", target="float", covariates=["object_of_floats"]
        ),
    ]
    for refuse in refusals:
        with pytest.raises(SubjectTableError) as info:
            refuse()
        assert info.value.column == "object_of_floats"


def test_qc_refuses_a_named_non_numeric_feature():
    table = _table()
    with pytest.raises(SubjectTableError, match="non-numeric dtype bool") as info:
        site_effect_report(table, table, "site", ["float", "bool"])
    assert info.value.column == "bool"


def test_combat_default_features_refuse_an_object_column_of_numbers():
    # features=None must not silently leave a column of numbers-as-objects out
    rng = np.random.default_rng(0)
    table = pd.DataFrame({
        "f0": rng.normal(size=12),
        "f1": rng.normal(size=12),
        "site": ["a", "b", "c"] * 4,
    })
    table["volume"] = pd.Series(rng.normal(size=12).tolist(), dtype=object)
    with pytest.raises(SubjectTableError, match="volume"):
        ComBatHarmonizer(site="site").fit(table)
    # text is not a feature, and is not an error either
    table["volume"] = pd.Series(["x"] * 12, dtype=object)
    out = ComBatHarmonizer(site="site").fit_transform(table)
    assert list(out.columns[:2]) == ["f0", "f1"]
