"""``categorical=``: covariate types declared instead of guessed or refused.

A mixed-type numpy covariate array (float age and text sex, which numpy stores
as text) is refused as ambiguous unless its categorical columns are declared;
declared, it gives exactly the model of the same covariates passed as a typed
DataFrame. Numeric scanner codes declared categorical get one-hot columns.
"""

import numpy as np
import pandas as pd
import pytest

from sklearn_medprep import ComBatHarmonizer, CovBatHarmonizer
from sklearn_medprep.exceptions import SubjectTableError


def _table(seed=0):
    """Three sites with additive and multiplicative effects, age covariate."""
    rng = np.random.default_rng(seed)
    sites = np.repeat(["A", "B", "C"], [30, 25, 35])
    n = sites.size
    age = rng.uniform(20, 80, n)
    shift = pd.Series(sites).map({"A": 0.0, "B": 2.0, "C": -3.0}).to_numpy()
    scale = pd.Series(sites).map({"A": 1.0, "B": 2.0, "C": 0.5}).to_numpy()
    data = rng.standard_normal((n, 6)) * scale[:, None] + shift[:, None]
    data += 10 + 0.02 * age[:, None]
    df = pd.DataFrame(data, columns=[f"f{j}" for j in range(6)])
    df.index = pd.Index(np.arange(n) * 3 + 100)
    df["site"] = sites
    df["age"] = age
    return df


def _mixed():
    df = _table()
    sex = np.where(np.arange(len(df)) % 3, "F", "M")
    mixed = np.column_stack([df["age"].to_numpy(), sex])  # text: '23.4', 'F'
    typed = pd.DataFrame({"age": df["age"], "sex": sex}, index=df.index)
    return df.drop(columns="age"), mixed, typed


@pytest.mark.parametrize("declared", [[1], ["covariate1"], [-1]])
def test_mixed_array_with_declared_categorical_equals_typed_dataframe(declared):
    X, mixed, typed = _mixed()
    ours = ComBatHarmonizer(categorical=declared)
    out = ours.fit(X, covariates=mixed).transform(X, covariates=mixed)
    ref = ComBatHarmonizer()
    expected = ref.fit(X, covariates=typed).transform(X, covariates=typed)
    # age one numeric column, sex one dummy: 3 sites + 2, not one level per age
    assert ours.coef_.shape[0] == 3 + 2
    assert list(ours.covariate_levels_) == ["covariate1"]
    # age parsed back from text is the same float (repr round trip)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=0, atol=1e-12)


def test_ambiguous_array_error_points_to_categorical():
    X, mixed, _ = _mixed()
    with pytest.raises(ValueError, match=r"column\(s\) \[0\] hold numbers") as info:
        ComBatHarmonizer().fit(X, covariates=mixed)
    assert "categorical=[1]" in str(info.value)
    assert "pandas DataFrame" in str(info.value)


def test_object_column_of_numbers_error_points_to_categorical_and_declared_ok():
    X, _, typed = _mixed()
    scanner = pd.Series(np.where(np.arange(len(X)) % 2, 1, 2), index=X.index)
    cov = typed.assign(scanner=scanner.astype(object))
    with pytest.raises(SubjectTableError, match="object dtype") as info:
        ComBatHarmonizer().fit(X, covariates=cov)
    assert info.value.column == "scanner"
    assert "categorical=" in str(info.value)
    combat = ComBatHarmonizer(categorical=["sex", "scanner"]).fit(X, covariates=cov)
    assert list(combat.covariate_levels_["scanner"]) == [1, 2]


def test_numeric_codes_declared_categorical_equal_text_codes():
    df = _table()
    codes = np.arange(len(df)) % 3 + 1  # 1, 2, 3 stored as numbers
    numeric = df.assign(scanner=codes)
    text = df.assign(scanner=np.array(["1", "2", "3"])[codes - 1])
    ours = ComBatHarmonizer(covariates=["age", "scanner"], categorical=["scanner"])
    out = ours.fit_transform(numeric)
    expected = ComBatHarmonizer(covariates=["age", "scanner"]).fit_transform(text)
    assert ours.coef_.shape[0] == 3 + 1 + 2  # one-hot, not a slope
    np.testing.assert_array_equal(out.to_numpy(), expected.to_numpy())
    # undeclared, the codes are a numeric slope
    plain = ComBatHarmonizer(covariates=["age", "scanner"]).fit(numeric)
    assert plain.coef_.shape[0] == 3 + 2


def test_undeclared_text_column_named_with_row():
    X, mixed, _ = _mixed()
    mixed = mixed.copy()
    mixed[7, 0] = "unknown"
    with pytest.raises(SubjectTableError, match="not declared in categorical") as info:
        ComBatHarmonizer(categorical=[1]).fit(X, covariates=mixed)
    assert info.value.column == "covariate0"
    assert info.value.row == X.index[7]
    assert "'unknown'" in str(info.value)


def test_categorical_naming_no_covariate_is_refused():
    df = _table()
    with pytest.raises(SubjectTableError, match="not a covariate") as info:
        ComBatHarmonizer(covariates=["age"], categorical=["sex"]).fit(df)
    assert info.value.column == "sex"
    X, mixed, _ = _mixed()
    with pytest.raises(ValueError, match="position 2 is out of range"):
        ComBatHarmonizer(categorical=[2]).fit(X, covariates=mixed)


def test_covbat_shares_the_declaration():
    X, mixed, typed = _mixed()
    ours = CovBatHarmonizer(categorical=[1], n_components=2)
    out = ours.fit(X, covariates=mixed).transform(X, covariates=mixed)
    ref = CovBatHarmonizer(n_components=2)
    expected = ref.fit(X, covariates=typed).transform(X, covariates=typed)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-10)
