"""The demo's search fits each fold's shared steps once, scoring as before."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_medprep import ComBatHarmonizer, _demo_search, demo
from sklearn_medprep.datasets import make_multisite_features


def _two_steps():
    prepare = Pipeline([
        ("combat", ComBatHarmonizer(site="site", covariates=["age", "sex"])),
        ("scale", StandardScaler()),
    ])
    return Pipeline([("prepare", prepare), ("classify", LogisticRegression())])


def test_search_scores_as_separate_fits_with_one_fit_per_fold():
    table = make_multisite_features(90, 12, n_sites=2, random_state=1)
    X, y = table.drop(columns="y"), table["y"]
    search = demo._search(_two_steps(), 1, 0)
    assert isinstance(search.estimator.memory, _demo_search._FoldFits)
    # the reference: the same grid and folds, every candidate fitted alone
    plain = clone(search).set_params(estimator__memory=None, scoring="roc_auc")
    plain.fit(X, y)
    search.fit(X, y)
    np.testing.assert_allclose(
        search.cv_results_["mean_test_score"],
        plain.cv_results_["mean_test_score"], rtol=0, atol=1e-12,
    )
    assert search.best_params_ == plain.best_params_
    np.testing.assert_array_equal(
        search.predict_proba(X), plain.predict_proba(X)
    )
    # 3 folds + the refit: 4 fits of the prepare step, not 3 x 3 + 1
    fits = _demo_search._FITS[search.estimator.memory.token]
    assert len([k for k in fits if k != "fitted" and k[0] != "transform"]) == 4
    assert len([k for k in fits if k[0] == "transform"]) == 3


def test_outer_scores_give_each_search_its_own_fits():
    table = make_multisite_features(90, 12, n_sites=2, random_state=2)
    X, y = table.drop(columns="y"), table["y"]
    from sklearn_medprep.model_selection import SiteStratifiedKFold

    outer = SiteStratifiedKFold(3, site="site", shuffle=True, random_state=0)
    search = demo._search(_two_steps(), 1, 0)
    plain = clone(search).set_params(estimator__memory=None, scoring="roc_auc")
    ours = demo._outer_scores(search, X, y, outer, "ours", verbose=False)
    ref = demo._outer_scores(plain, X, y, outer, "plain", verbose=False)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_rank_auc_equals_roc_auc_score(seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(40, 3))
    X[::4] = X[1::4]  # tied scores
    y = (X[:, 0] + rng.normal(size=40) > 0).astype(int)
    model = Pipeline([("prepare", StandardScaler()),
                      ("classify", LogisticRegression())]).fit(X, y)
    expected = roc_auc_score(y, model.decision_function(X))
    assert _demo_search._roc_auc(model, X, y) == pytest.approx(expected, abs=1e-15)
    with pytest.raises(ValueError, match="Only one class"):
        _demo_search._roc_auc(model, X, np.ones(40, dtype=int))
