"""Target proxies (table._proxy): each kind found and refused, near warns,
no false positive on unrelated, binary or thresholding columns."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sklearn_medprep.exceptions import TargetProxyError, TargetProxyWarning
from sklearn_medprep.table import (
    TargetProxy,
    check_target_proxies,
    find_target_proxies,
)

N = 120


@pytest.fixture
def age():
    return np.random.default_rng(0).uniform(20, 80, N)


def _kinds(X, y, **kw):
    return {p.column: p.kind for p in find_target_proxies(X, y, **kw)}


def test_exact_kinds_found(age):
    rng = np.random.default_rng(1)
    X = pd.DataFrame(
        {
            "noise": rng.normal(size=N),
            "copy": age.copy(),
            "months": 12 * age,
            "fahrenheit": age * 9 / 5 + 32,
            "log": np.log(age),
            "rank": stats.rankdata(age),
            "reversed": -np.exp(age / 40),
        }
    )
    assert _kinds(X, age) == {
        "copy": "equal",
        "months": "unit",
        "fahrenheit": "unit",
        "log": "monotone",
        "rank": "monotone",
        "reversed": "monotone",
    }
    found = {p.column: p for p in find_target_proxies(X, age)}
    assert isinstance(found["months"], TargetProxy)
    # the affine map is recovered: y = x / 12 and y = (F - 32) * 5 / 9
    assert "y = 0.0833333 * months + 0 " in found["months"].detail
    assert "y = 0.555556 * fahrenheit - 17.7778 " in found["fahrenheit"].detail
    assert found["reversed"].statistic == -1.0
    assert found["log"].statistic == 1.0


def test_unit_in_the_other_direction(age):
    # y in months, the column in years: y = 12 * age + 0
    X = pd.DataFrame({"age": age})
    (p,) = find_target_proxies(X, 12 * age)
    assert p.kind == "unit"
    assert "y = 12 * age + 0 " in p.detail


def test_relabel_text_codes_and_categories():
    rng = np.random.default_rng(2)
    y = rng.choice(["tumour", "healthy", "cyst"], N)
    codes = {"tumour": 7, "healthy": 2, "cyst": 5}  # not in y's order
    X = pd.DataFrame(
        {
            "code": [codes[v] for v in y],
            "upper": pd.Series(np.char.upper(y.astype(str))),
            "cat": pd.Categorical(y),
            "other": rng.choice(["a", "b", "c"], N),
            "score": rng.normal(size=N),
        }
    )
    assert _kinds(X, y) == {"code": "relabel", "upper": "relabel", "cat": "equal"}
    # numeric y against text labels of the same classes
    y_num = np.array([codes[v] for v in y], dtype=float)
    X2 = pd.DataFrame({"label": y, "noise": rng.normal(size=N)})
    assert _kinds(X2, y_num) == {"label": "relabel"}


def test_relabel_needs_repeated_values():
    # all distinct values: any two such columns are "one-to-one"; not a proxy
    rng = np.random.default_rng(3)
    y = np.array([f"s{i}" for i in range(N)])
    X = pd.DataFrame({"id": rng.permutation(N), "name": rng.permutation(y)})
    assert find_target_proxies(X, y) == []


def test_no_false_positive(age):
    rng = np.random.default_rng(4)
    X = pd.DataFrame(rng.normal(size=(N, 300)))
    X["binary"] = rng.integers(0, 2, N)
    X["sex"] = rng.choice(["M", "F"], N)
    X["old"] = (age > 50).astype(int)  # thresholds y perfectly: y is no function of it
    X["decade"] = (age // 10).astype(int)  # a coarser y, many-to-one
    X["site"] = rng.choice(list("abcde"), N)
    X["constant"] = 1.0
    X.columns = X.columns.astype(str)
    assert find_target_proxies(X, age) == []
    # nor against class labels
    y = rng.choice(["a", "b"], N)
    assert find_target_proxies(X.drop(columns=["binary", "sex"]), y) == []


def test_monotone_needs_five_values_without_repeats():
    # among 4 all-distinct values an order is kept by chance 1 time in 12
    X = pd.DataFrame({"x": [1.0, 2.0, 3.0, 5.0]})
    assert find_target_proxies(X, [1.0, 4.0, 9.0, 10.0]) == []
    X = pd.DataFrame({"x": [1.0, 2.0, 3.0, 5.0, 8.0]})
    assert _kinds(X, [1.0, 4.0, 9.0, 10.0, 11.0]) == {"x": "monotone"}


def test_nan_rows_left_out(age):
    months = 12 * age
    months[[3, 10, 50]] = np.nan
    y = age.copy()
    y[[5, 60]] = np.nan
    label = pd.array([None] * 4 + ["a", "b"] * 58)
    X = pd.DataFrame({"months": months, "label": label})
    (p,) = find_target_proxies(X, y)
    assert (p.column, p.kind) == ("months", "unit")
    assert f"on the {N - 5} rows" in p.detail
    # fewer than half the rows shared: not judged
    sparse = np.full(N, np.nan)
    sparse[: N // 2 - 1] = age[: N // 2 - 1]
    assert find_target_proxies(pd.DataFrame({"s": sparse}), age) == []
    sparse[: N // 2] = age[: N // 2]
    assert _kinds(pd.DataFrame({"s": sparse}), age) == {"s": "equal"}


def test_nan_in_screen_rows(age):
    # NaN in the first rows (the screen) does not hide a proxy
    months = 12 * age
    months[:45] = np.nan
    X = pd.DataFrame({"months": months, "z": np.random.default_rng(5).normal(size=N)})
    assert _kinds(X, age) == {"months": "unit"}


def test_proxy_beyond_screen_rows():
    # relabel visible only after row 50: codes agree on the first rows by chance
    rng = np.random.default_rng(6)
    y = np.repeat(["a", "b", "c", "d"], 50)
    code = np.repeat([0, 1, 2, 3], 50)
    X = pd.DataFrame({"code": code, "z": rng.normal(size=200)})
    assert _kinds(X, y) == {"code": "relabel"}


def test_near_reported_with_r(age):
    rng = np.random.default_rng(7)
    X = pd.DataFrame(
        {"noisy": age + rng.normal(0, 0.6, N), "far": age + rng.normal(0, 10, N)}
    )
    (p,) = find_target_proxies(X, age)
    assert (p.column, p.kind) == ("noisy", "near")
    r = np.corrcoef(X["noisy"], age)[0, 1]
    rho = stats.spearmanr(X["noisy"], age).statistic
    assert p.statistic == pytest.approx(max(r, rho, key=abs))
    assert f"Pearson r = {r:.4f}" in p.detail
    assert find_target_proxies(X, age, near=None) == []
    assert _kinds(X, age, near=0.5) == {"noisy": "near", "far": "near"}


def test_check_refuses_exact_with_column_and_evidence(age):
    X = pd.DataFrame({"thickness": np.random.default_rng(8).normal(size=N), "age": age})
    with pytest.raises(TargetProxyError) as info:
        check_target_proxies(X, 12 * age, estimator="ComBatHarmonizer")
    err = info.value
    assert err.column == "age"
    msg = str(err)
    assert "ComBatHarmonizer would hand column 'age'" in msg
    assert "up to a change of unit: y = 12 * age + 0" in msg
    assert "Drop 'age' from X" in msg
    # never a setting that would let it through
    assert "features=" not in msg and "passthrough" not in msg


def test_check_lists_every_exact_column(age):
    X = pd.DataFrame({"a": age, "b": np.log(age)})
    with pytest.raises(TargetProxyError, match=r"Other columns .*\['b'\]") as info:
        check_target_proxies(X, age)
    assert info.value.column == "a"


def test_check_warns_near(age):
    X = pd.DataFrame({"noisy": age + np.random.default_rng(9).normal(0, 0.5, N)})
    match = r"'noisy' is nearly y: Pearson r = 0\.99"
    with pytest.warns(TargetProxyWarning, match=match):
        out = check_target_proxies(X, age, estimator="X")
    assert [p.column for p in out] == ["noisy"]


def test_check_nothing_without_y(age):
    assert check_target_proxies(pd.DataFrame({"age": age}), None) == []


def test_columns_restrict_and_array_input(age):
    X = pd.DataFrame({"age": age, "z": np.random.default_rng(10).normal(size=N)})
    assert find_target_proxies(X, age, columns=["z"]) == []
    with pytest.raises(KeyError, match="'w'"):
        find_target_proxies(X, age, columns=["w"])
    arr = np.column_stack([X["z"], 2 * age])
    assert _kinds(arr, age) == {1: "unit"}


def test_two_d_y_each_output(age):
    rng = np.random.default_rng(11)
    other = rng.normal(size=N)
    X = pd.DataFrame({"age": age, "o": -other, "z": rng.normal(size=N)})
    found = find_target_proxies(X, np.column_stack([age, other]))
    assert [(p.column, p.kind) for p in found] == [("age", "equal"), ("o", "unit")]
    assert "y[:, 1]" in found[1].detail
    Y = pd.DataFrame({"age": age, "other": other})
    assert "y['other']" in find_target_proxies(X, Y)[1].detail


def test_bad_y_and_near():
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="y has 2 rows where X has 3"):
        find_target_proxies(X, [1.0, 2.0])
    with pytest.raises(ValueError, match="near must be in"):
        find_target_proxies(X, [1.0, 2.0, 3.0], near=1.5)


def test_screen_agrees_with_full_check():
    # the vectorized screen never hides what the per-column check finds
    rng = np.random.default_rng(12)
    y = rng.uniform(0, 1, 300)
    cols = {f"z{j}": rng.normal(size=300) for j in range(50)}
    cols.update(
        sq=y**2, cube=-(y**3), lin=3 * y - 1, near=y + rng.normal(0, 0.01, 300)
    )
    X = pd.DataFrame(cols)
    whole = _kinds(X, y)
    one_by_one = {}
    for c in X.columns:
        one_by_one.update(_kinds(X[[c]], y))
    assert whole == one_by_one == {
        "sq": "monotone",
        "cube": "monotone",
        "lin": "unit",
        "near": "near",
    }


def test_screen_leaves_out_unrelated_columns():
    # the screen is what keeps the check fast: unrelated columns never reach
    # the per-column check, the proxies always do (with or without NaN)
    from sklearn_medprep.table._proxy import _screen

    rng = np.random.default_rng(13)
    yh = rng.uniform(20, 80, 50)
    T = rng.normal(size=(500, 50))
    T[:3] = [yh, np.log(yh), 3 * yh + 1]
    T[3] = yh + rng.normal(0, 0.3, 50)
    for nan in (False, True):
        if nan:
            T[:, 7] = np.nan
        kept = _screen(T, yh, y_numeric=True, relabel_possible=False, near=0.99)
        assert kept.tolist() == [0, 1, 2, 3]
    codes = rng.integers(0, 3, 50).astype(float)
    T[4] = 10 - codes
    kept = _screen(T, codes, y_numeric=False, relabel_possible=True, near=None)
    assert kept.tolist() == [4]
