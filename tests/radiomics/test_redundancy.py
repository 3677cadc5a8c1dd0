"""CorrelationSelector: greedy redundancy filter learnt on the training rows."""

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import KFold, cross_validate
from sklearn.pipeline import make_pipeline

from sklearn_medprep import CorrelationSelector


def _reference(X, y, threshold, method, ranking):
    """Brute force: every pair with scipy, the ranking by hand, the greedy walk."""
    X = np.asarray(X, float)
    corr = pearsonr if method == "pearson" else spearmanr
    p = X.shape[1]
    r = np.zeros((p, p))
    for i, j in itertools.product(range(p), repeat=2):
        r[i, j] = abs(corr(X[:, i], X[:, j])[0])
    if ranking == "variance":
        scores = [np.var(X[:, i]) for i in range(p)]
    elif ranking == "target":
        scores = [abs(corr(X[:, i], y)[0]) for i in range(p)]
    else:
        scores = [-i for i in range(p)]
    order = sorted(range(p), key=lambda i: (-scores[i], i))
    kept = []
    for i in order:
        if all(r[i, k] <= threshold for k in kept):
            kept.append(i)
    return sorted(kept)


def _correlated(n=40, p=8, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 3))
    mix = rng.normal(size=(3, p))
    X = base @ mix + rng.normal(scale=rng.uniform(0.1, 1.5, p), size=(n, p))
    X[:, -1] = np.exp(X[:, 0])  # monotone: Spearman 1, Pearson less
    y = base[:, 0] + rng.normal(scale=0.5, size=n)
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(p)]), y


@pytest.mark.parametrize("method", ["pearson", "spearman"])
@pytest.mark.parametrize("ranking", ["variance", "target", "order"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force(method, ranking, seed):
    X, y = _correlated(seed=seed)
    for threshold in (0.3, 0.6, 0.9):
        selector = CorrelationSelector(threshold, method=method, ranking=ranking)
        selector.fit(X, y)
        want = _reference(X, y, threshold, method, ranking)
        assert np.flatnonzero(selector.get_support()).tolist() == want
        assert list(selector.get_feature_names_out()) == [X.columns[i] for i in want]
        # every dropped feature names a kept one it correlates with above threshold
        for dropped, kept in selector.redundant_with_.items():
            assert kept in selector.get_feature_names_out()
            corr = pearsonr if method == "pearson" else spearmanr
            assert abs(corr(X[dropped], X[kept])[0]) > threshold


def test_callable_ranking_and_output():
    X, y = _correlated(seed=3)
    # reverse column order as a callable (a tuple, as scikit-learn score_func)
    selector = CorrelationSelector(0.6, ranking=lambda X, y: (np.arange(X.shape[1]),
                                                              None))
    selector.fit(X, y)
    reversed_ = _reference(X.iloc[:, ::-1], y, 0.6, "pearson", "order")
    want = sorted(X.shape[1] - 1 - i for i in reversed_)
    assert np.flatnonzero(selector.support_).tolist() == want
    out = selector.set_output(transform="pandas").transform(X.set_axis(
        [f"s{i}" for i in range(len(X))]))
    assert list(out.columns) == list(selector.get_feature_names_out())
    assert out.index[0] == "s0"
    pd.testing.assert_frame_equal(out.reset_index(drop=True),
                                  X.iloc[:, want].reset_index(drop=True))


def test_fit_uses_only_the_training_rows():
    """In cross-validation each fold's selector is fitted on its training rows.

    Rows 0-29: a and b equal up to small noise (|r| ~ 1); rows 30-59: a and b
    independent. The whole cohort's |r| is above 0.9 (b dropped), the second
    half alone is far below (both kept).
    """
    rng = np.random.default_rng(0)
    a1 = rng.normal(scale=10, size=30)
    a2, b2 = rng.normal(size=(2, 30))
    X = pd.DataFrame({"a": np.r_[a1, a2],
                      "b": np.r_[a1 + rng.normal(scale=0.1, size=30), b2],
                      "c": rng.normal(size=60)})
    y = X["c"] + rng.normal(size=60)
    assert abs(np.corrcoef(X["a"], X["b"])[0, 1]) > 0.9
    assert abs(np.corrcoef(X["a"][30:], X["b"][30:])[0, 1]) < 0.5
    whole = CorrelationSelector(0.9, ranking="order").fit(X, y)
    assert whole.get_feature_names_out().tolist() == ["a", "c"]
    cv = KFold(2, shuffle=False)
    pipe = make_pipeline(CorrelationSelector(0.9, ranking="order"),
                         LinearRegression())
    result = cross_validate(pipe, X, y, cv=cv, return_estimator=True)
    folds = [fitted[0].get_feature_names_out().tolist()
             for fitted in result["estimator"]]
    for (train, _), got in zip(cv.split(X), folds):
        alone = CorrelationSelector(0.9, ranking="order").fit(X.iloc[train], y[train])
        assert got == alone.get_feature_names_out().tolist()
    # fold 1 trains on rows 30-59 (a, b independent): b kept, unlike the whole
    assert folds[0] == ["a", "b", "c"]
    assert folds[1] == ["a", "c"]


@pytest.mark.shared_data
def test_real_table_kept_features_below_threshold(shared_data):
    path = shared_data / "multisite" / "mriqclearn_abide_iqms.tsv"
    if not path.is_file():
        pytest.skip("../shared/data/multisite is absent")
    table = pd.read_csv(path, sep="\t")
    X = table.drop(columns=["subject_id", "site", "rater_1", "rater_2", "rater_3"])
    X = X.dropna()  # the quality metrics themselves have no NaN: no row lost
    assert X.shape == (len(table), 68) == (1101, 68)  # as the user guide says
    for method in ("pearson", "spearman"):
        selector = CorrelationSelector(0.9, method=method).fit(X)
        kept = selector.get_feature_names_out()
        assert 5 < len(kept) < X.shape[1]  # the MRIQC metrics are redundant
        r = X[kept].corr(method=method).abs().to_numpy(copy=True)
        np.fill_diagonal(r, 0)
        assert r.max() <= 0.9
        # and each dropped metric is above 0.9 with a kept one (pandas' value)
        full = X.corr(method=method).abs()
        for dropped, keeper in selector.redundant_with_.items():
            assert full.loc[dropped, keeper] > 0.9


def test_bad_cells_named():
    X, y = _correlated()
    X.index = [f"s{i}" for i in range(len(X))]
    bad = X.copy()
    bad.loc["s4", "f2"] = np.nan
    with pytest.raises(ValueError, match=r"column 'f2', row 's4'"):
        CorrelationSelector().fit(bad, y)
    fitted = CorrelationSelector().fit(X, y)
    bad.loc["s4", "f2"] = np.inf
    with pytest.raises(ValueError, match=r"column 'f2', row 's4'"):
        fitted.transform(bad)
    with pytest.raises(ValueError, match="needs y"):
        CorrelationSelector(ranking="target").fit(X)
    with pytest.raises(ValueError, match="3 classes"):
        CorrelationSelector(ranking="target").fit(X, np.array(list("abc") * 13 + ["a"]))
    with pytest.raises(ValueError, match="finite scores"):
        CorrelationSelector(ranking=lambda X, y: np.ones(2)).fit(X, y)


def test_constant_columns_are_kept_and_correlate_zero():
    X, y = _correlated()
    X["const"] = 1.0
    X["const2"] = 0.1  # a repeated non-representable value: still constant
    selector = CorrelationSelector(0.5, ranking="order").fit(X, y)
    assert {"const", "const2"} <= set(selector.get_feature_names_out())
    ref = _reference(X.iloc[:, :-2], y, 0.5, "pearson", "order")
    assert np.flatnonzero(selector.support_[:-2]).tolist() == ref
    # a two-class string target ranks like its 0/1 coding
    labels = np.where(y > 0, "yes", "no")
    coded = (labels == pd.unique(labels)[1]).astype(float)
    by_label = CorrelationSelector(0.5, ranking="target").fit(X.iloc[:, :-2], labels)
    by_code = CorrelationSelector(0.5, ranking="target").fit(X.iloc[:, :-2], coded)
    np.testing.assert_allclose(by_label.scores_, by_code.scores_)
