"""Site predictability: chance, permutation interval, held-out rows only."""

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.model_selection import StratifiedKFold, permutation_test_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_medprep import ComBatHarmonizer, SitePredictability, site_predictability
from sklearn_medprep.datasets import make_multisite_features
from sklearn_medprep.exceptions import MedprepWarning
from sklearn_medprep.model_selection import SiteStratifiedKFold


def _noise(n_per_site=30, n_sites=4, n_features=6, shift=0.0, seed=0):
    """Pure noise features; ``shift`` adds a per-site offset (a site effect)."""
    rng = np.random.default_rng(seed)
    sites = np.repeat([f"s{k}" for k in range(n_sites)], n_per_site)
    values = rng.normal(size=(sites.size, n_features))
    values += shift * rng.normal(size=(n_sites, n_features))[
        np.repeat(np.arange(n_sites), n_per_site)
    ]
    table = pd.DataFrame(values, columns=[f"f{j}" for j in range(n_features)])
    table.index = [f"sub{i:03d}" for i in range(len(table))]
    return table.assign(site=sites)


def test_planted_over_correction_is_flagged():
    # each site's mean zeroed on exactly the rows that are scored: the
    # held-out part of a site always sits opposite its training part
    table = _noise(n_features=20)
    feats = [c for c in table.columns if c != "site"]
    centred = table.copy()
    centred[feats] -= table.groupby("site")[feats].transform("mean")
    with pytest.warns(MedprepWarning, match="over-correction"):
        score = site_predictability(centred, "site")
    assert score.verdict == "below chance: over-correction"
    assert score < score.null_interval[0] < score.chance
    assert score.p_value == 1.0  # no permutation scored lower
    # the same noise, not centred, is at chance
    assert site_predictability(table, "site").verdict == "at chance"


def test_real_site_effect_remains():
    score = site_predictability(_noise(shift=1.5), "site")
    assert score.verdict == "site signal remains"
    assert score > score.null_interval[1]
    assert score.chance == pytest.approx(0.25)
    assert score.p_value == pytest.approx(1 / 21)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_site_effect_interval_contains_score(seed):
    score = site_predictability(_noise(seed=seed), "site", random_state=seed)
    low, high = score.null_interval
    assert low <= score <= high
    assert score.verdict == "at chance"
    assert low < score.chance < high


def test_interval_matches_sklearn_permutation_test_score():
    table = _noise(shift=0.3, n_per_site=20)
    feats = [c for c in table.columns if c != "site"]
    score = site_predictability(table, "site", n_permutations=30, random_state=3)
    model = make_pipeline(
        SimpleImputer(), StandardScaler(), RidgeClassifier(class_weight="balanced")
    )
    ref, ref_perm, ref_p = permutation_test_score(
        model,
        table[feats].to_numpy(),
        table["site"].to_numpy(),
        cv=StratifiedKFold(5, shuffle=True, random_state=3),
        n_permutations=30,
        random_state=3,
        scoring="balanced_accuracy",
    )
    assert float(score) == pytest.approx(ref, abs=1e-12)
    np.testing.assert_allclose(score.permutation_scores, ref_perm, atol=1e-12)
    assert score.p_value == pytest.approx(ref_p)
    # 30 permutations: k = floor(0.05 * 31) = 1, the smallest and largest
    assert score.null_interval == (ref_perm.min(), ref_perm.max())
    assert score.p_value_below == pytest.approx(
        (1 + np.sum(ref_perm <= ref)) / 31
    )


def test_interval_bounds_match_the_p_values():
    table = _noise(shift=0.25, n_per_site=12, n_features=4)
    score = site_predictability(table, "site", n_permutations=60, random_state=1)
    perm = np.sort(score.permutation_scores)
    assert score.null_interval == (perm[2], perm[-3])  # k = floor(0.05 * 61) = 3
    for value in np.linspace(0, 1, 41):
        above = (1 + np.sum(perm >= value)) / 61 <= 0.05
        below = (1 + np.sum(perm <= value)) / 61 <= 0.05
        assert (value > score.null_interval[1]) == above, value
        assert (value < score.null_interval[0]) == below, value
    few = site_predictability(table, "site", n_permutations=10)
    assert few.null_interval is None and few.verdict is None
    assert 0 < few.p_value <= 1 and "too few permutations" in repr(few)


FITTED, TRANSFORMED = [], []


class RecordingHarmonizer(TransformerMixin, BaseEstimator):
    """Per-site mean-centering learned in fit; records the rows it sees."""

    def fit(self, X, y=None):
        FITTED.append(list(X.index))
        feats = [c for c in X.columns if c != "site"]
        self.means_ = X.groupby("site")[feats].mean()
        return self

    def transform(self, X):
        TRANSFORMED.append(list(X.index))
        feats = list(self.means_.columns)
        return X[feats] - self.means_.loc[X["site"]].to_numpy()


def test_harmonizer_never_fitted_on_scored_rows():
    FITTED.clear()
    TRANSFORMED.clear()
    table = _noise(shift=1.0)
    score = site_predictability(table, "site", harmonizer=RecordingHarmonizer())
    assert len(FITTED) == len(TRANSFORMED) == 3 == len(score.fold_scores)
    for fitted, scored in zip(FITTED, TRANSFORMED):
        assert not set(fitted) & set(scored)
        assert set(fitted) | set(scored) == set(table.index)
    assert sorted(sum(TRANSFORMED, [])) == sorted(table.index)
    # each outer fold is scored within its held-out rows, as harmonized
    outer = SiteStratifiedKFold(3, shuffle=True, random_state=0)
    sites = table["site"].to_numpy()
    for k, (train, test) in enumerate(outer.split(table, groups=sites)):
        h = RecordingHarmonizer().fit(table.iloc[train])
        held_out = h.transform(table.iloc[test]).assign(site=sites[test])
        expected = site_predictability(held_out, "site", n_permutations=0)
        assert score.fold_scores[k] == pytest.approx(float(expected), abs=1e-12)
    assert float(score) == pytest.approx(np.mean(score.fold_scores))
    # held-out rows keep no site offset: at chance, never below
    assert score.verdict == "at chance"


def test_harmonizer_path_with_combat_and_target():
    df = make_multisite_features(150, 5, n_sites=3, site_effect=2.0, random_state=0)
    X, y = df.drop(columns="y"), df["y"].to_numpy()
    raw = site_predictability(X.drop(columns=["age", "sex"]), "site")
    after = site_predictability(
        X,
        "site",
        harmonizer=ComBatHarmonizer(covariates=["age", "sex"]),
        y=y,
        covariates=["age", "sex"],
    )
    assert raw.verdict == "site signal remains"
    assert after < raw - 0.3
    assert after.chance == pytest.approx(1 / 3)
    assert "ComBatHarmonizer fitted on the training rows of 3 outer folds" in (
        after.protocol
    )
    # the covariates may come as a DataFrame, kept from the harmonizer's input
    covs = X[["age", "sex"]].sample(frac=1, random_state=0)  # paired by label
    again = site_predictability(
        X.drop(columns="age"),
        "site",
        harmonizer=ComBatHarmonizer(covariates=["sex"]),
        covariates=covs,
        features=[c for c in X.columns if c.startswith("f")],
    )
    assert 0 <= again <= 1 and again.chance == pytest.approx(1 / 3)


def test_covariate_frame_equals_covariate_columns():
    df = make_multisite_features(90, 4, random_state=1).drop(columns="y")
    feats = [c for c in df.columns if c.startswith("f")]
    by_name = site_predictability(df, "site", covariates=["age", "sex"])
    by_frame = site_predictability(
        df[[*feats, "site"]], "site", covariates=df[["age", "sex"]]
    )
    assert float(by_frame) == float(by_name)
    np.testing.assert_array_equal(
        by_frame.permutation_scores, by_name.permutation_scores
    )
    with pytest.raises(ValueError, match="one row of covariates per row"):
        site_predictability(df, "site", covariates=df[["age"]].iloc[:-1])


def test_result_is_a_float_that_pickles():
    score = site_predictability(_noise(shift=1.5), "site")
    assert isinstance(score, float) and isinstance(score, SitePredictability)
    assert score > 0.6 and f"{score:.3f}" == f"{float(score):.3f}"
    assert str(score) == repr(float(score))
    assert score + 0 == float(score) and round(score, 2) == round(float(score), 2)
    text = repr(score)
    assert "chance 0.250" in text and "site signal remains" in text
    again = pickle.loads(pickle.dumps(score))
    assert type(again) is SitePredictability and float(again) == float(score)
    assert again.verdict == score.verdict
    assert again.null_interval == score.null_interval
    np.testing.assert_array_equal(again.permutation_scores, score.permutation_scores)


def test_no_permutations():
    score = site_predictability(_noise(), "site", n_permutations=0)
    assert score.null_interval is None and score.verdict is None
    assert score.p_value is None and score.permutation_scores.size == 0
    assert "no permutations" in repr(score)


def test_classifier_is_used():
    table = _noise(shift=1.0)
    feats = [c for c in table.columns if c != "site"]
    score = site_predictability(
        table, "site", classifier=LogisticRegression(max_iter=1000),
        n_permutations=0,
    )
    model = make_pipeline(
        SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=1000)
    )
    ref = permutation_test_score(
        model, table[feats], table["site"], n_permutations=1, random_state=0,
        cv=StratifiedKFold(5, shuffle=True, random_state=0),
        scoring="balanced_accuracy",
    )[0]
    assert float(score) == pytest.approx(ref, abs=1e-12)


def test_plot_harmonization_shows_chance_interval_and_over_correction():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sklearn_medprep import plot_harmonization

    table = _noise(n_features=20)
    feats = [c for c in table.columns if c != "site"]
    centred = table.copy()
    centred[feats] -= table.groupby("site")[feats].transform("mean")
    before = site_predictability(table, "site")
    with pytest.warns(MedprepWarning):
        after = site_predictability(centred, "site")
    fig = plot_harmonization(
        table, centred[feats], "site", n_features=1,
        predictability={"before": before, "after": after},
    )
    texts = [t for ax in fig.axes for t in ax.texts]
    (text,) = [t for t in texts if "site predictability" in t.get_text()]
    low, high = after.null_interval
    assert f"after: {float(after):.2f}, chance 0.25" in text.get_text()
    assert f"permuted {low:.2f}-{high:.2f}: OVER-CORRECTION" in text.get_text()
    assert "before" in text.get_text() and "at chance" in text.get_text()
    assert text.get_color() == "tab:red"
    plt.close(fig)


class ShufflingHarmonizer(RecordingHarmonizer):
    """Returns the held-out rows in reverse order (pairs by label)."""

    def transform(self, X):
        return super().transform(X).iloc[::-1]


def test_harmonizer_output_pairs_rows_by_label():
    table = _noise(shift=1.0)
    ordered = site_predictability(table, "site", harmonizer=RecordingHarmonizer())
    shuffled = site_predictability(table, "site", harmonizer=ShufflingHarmonizer())
    assert float(shuffled) == float(ordered)
    np.testing.assert_array_equal(
        shuffled.permutation_scores, ordered.permutation_scores
    )
