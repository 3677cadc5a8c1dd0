"""No target proxy leaves a harmonizer (issue 20): every column handed on in
``fit`` (harmonized or passed through) that is ``y`` in disguise is refused,
with or without ``features=``; a near one warns; ``y=None`` checks nothing."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_medprep import (
    ComBatHarmonizer,
    CovBatHarmonizer,
    VoxelComBatHarmonizer,
)
from sklearn_medprep.datasets import make_multisite_features, make_voxel_cohort
from sklearn_medprep.exceptions import (
    MedprepWarning,
    TargetProxyError,
    TargetProxyWarning,
)
from sklearn_medprep.table import find_target_proxies

N, P = 60, 5
FEATS = [f"f{j:03d}" for j in range(P)]


@pytest.fixture
def df():
    data = make_multisite_features(
        n_subjects=N, n_features=P, site_sizes=[25, 15, 20], random_state=0
    )
    data.index = pd.Index(np.arange(N) * 7 + 2)  # not 0..n-1
    return data


def _x(df, **extra):
    return df[[*FEATS, "site", "age", "sex"]].assign(**extra)


@pytest.mark.parametrize("features", [None, FEATS])
@pytest.mark.parametrize(
    "make, kind, evidence",
    [
        (lambda y: y, "equal", "equals y on the 60 rows"),
        (lambda y: 12 * y, "unit", "y = 0.0833333 * target_copy + 0"),
        (lambda y: np.log(y), "monotone", "strictly increasing function of y"),
    ],
)
def test_combat_refuses_proxy_handed_on(df, features, make, kind, evidence):
    y = df["age"].to_numpy() + 1.0  # positive, not a covariate here
    X = _x(df, target_copy=make(y)).drop(columns="age")
    combat = ComBatHarmonizer(covariates=["sex"], features=features)
    # harmonized (features=None) or passed through (features=FEATS): refused
    with pytest.raises(TargetProxyError, match=re.escape(evidence)) as info:
        combat.fit(X, y)
    assert info.value.column == "target_copy"
    msg = str(info.value)
    assert "ComBatHarmonizer would hand column 'target_copy'" in msg
    assert "Drop 'target_copy' from X" in msg
    assert "features=" not in msg and "keep_covariates" not in msg


def test_combat_relabelled_class_and_kept_covariates(df):
    y = np.where(df["y"].to_numpy() == 1, "patient", "control")
    X = _x(df, group=df["y"].map({0: "ctl", 1: "pat"}))
    with pytest.raises(TargetProxyError, match="is y relabelled") as info:
        ComBatHarmonizer(covariates=["age"], features=FEATS).fit(X, y)
    assert info.value.column == "group"
    # a site column handed on (keep_covariates=True) is checked too (a
    # target that identifies the site cannot be protected: protect_target off)
    y_site = df["site"].map({"site_0": 0, "site_1": 1, "site_2": 2}).to_numpy()
    combat = ComBatHarmonizer(
        covariates=["age"], features=FEATS, protect_target="none"
    )
    combat.fit(_x(df), y_site)  # the site is consumed, not handed on: fine
    with pytest.raises(TargetProxyError, match="column 'site'"):
        combat.set_params(keep_covariates=True).fit(_x(df), y_site)


def test_combat_no_false_positive_and_no_y(df):
    y = df["age"].to_numpy()
    X = _x(df, subject=[f"s{i}" for i in range(N)], old=(y > 50).astype(int))
    X = X.drop(columns="age")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = ComBatHarmonizer(covariates=["sex"], features=FEATS).fit_transform(X, y)
        # a column equal to y passes when no y is given (nothing to compare)
        ComBatHarmonizer(covariates=["sex"], features=FEATS).fit(_x(df, c=y))
    assert list(out.columns) == [*FEATS, "subject", "old"]


def test_combat_near_proxy_warns_and_passes(df):
    y = df["age"].to_numpy()
    noisy = y + np.random.default_rng(0).normal(0, 0.3, N)
    X = _x(df, noisy=noisy).drop(columns="age")
    r = np.corrcoef(noisy, y)[0, 1]
    with pytest.warns(TargetProxyWarning, match=f"'noisy'.*Pearson r = {r:.4f}"):
        out = ComBatHarmonizer(covariates=["sex"], features=FEATS).fit_transform(X, y)
    np.testing.assert_array_equal(out["noisy"].to_numpy(), noisy)


def test_combat_array_input_checks_features(df):
    y = df["age"].to_numpy()
    arr = np.column_stack([df[FEATS].to_numpy(), 2 * y])
    with pytest.raises(TargetProxyError, match="column 'x5'"):
        ComBatHarmonizer().fit(arr, y, sites=df["site"].to_numpy())


def test_covbat_refuses_proxy(df):
    y = df["age"].to_numpy()
    X = _x(df, age_months=12 * y).drop(columns="age")
    covbat = CovBatHarmonizer(covariates=["sex"], features=FEATS, n_components=2)
    with pytest.raises(TargetProxyError, match="up to a change of unit") as info:
        covbat.fit(X, y)
    assert info.value.column == "age_months"
    out = covbat.fit_transform(X.drop(columns="age_months"), y)
    assert list(out.columns) == FEATS


def test_voxel_combat_refuses_pass_through_proxy():
    table, _ = make_voxel_cohort(8, 2, shape=(7, 8, 9), random_state=0)
    y = table["age"].to_numpy()
    X = table.drop(columns="age").assign(age_months=12 * y)
    voxel = VoxelComBatHarmonizer(site="site", chunk_size=97)
    with pytest.raises(TargetProxyError, match="column 'age_months'") as info:
        voxel.fit(X, y)
    assert "VoxelComBatHarmonizer would hand" in str(info.value)
    voxel.fit(X.drop(columns="age_months"), y)  # the clean table fits


# the case: the OpenNeuro transfer pair, age left in X, y = age
def _thickness_table(shared_data):
    path = shared_data / "multisite" / "pcn_OpenNeuroTransfer_ct_tr.csv"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    table = pd.read_csv(path).drop(columns=["sub_id", "sitenum"])
    thickness = [c for c in table.columns if c.endswith("_thickness")]
    return table, thickness


@pytest.mark.parametrize("months", [False, True])
@pytest.mark.parametrize("with_features", [True, False])
def test_openneuro_age_left_in_x_is_refused(shared_data, months, with_features):
    table, thickness = _thickness_table(shared_data)
    y = table["age"].to_numpy()
    X = table.assign(age=12 * y) if months else table
    combat = ComBatHarmonizer(
        covariates=["sex"], features=thickness if with_features else None
    )
    model = make_pipeline(combat, StandardScaler(), RidgeCV())
    kind = "up to a change of unit: y = 0.0833333 * age + 0" if months else "equals y"
    with pytest.raises(TargetProxyError, match=re.escape(kind)) as info:
        model.fit(X, y)
    assert info.value.column == "age"
    assert "Drop 'age' from X" in str(info.value)
    assert "features=" not in str(info.value)


def test_openneuro_without_age_fits_silently(shared_data):
    # no false positive among the 240 real FreeSurfer columns
    table, thickness = _thickness_table(shared_data)
    y = table["age"].to_numpy()
    X = table.drop(columns="age")[["site", "sex", *thickness]]
    model = make_pipeline(
        ComBatHarmonizer(covariates=["sex"], features=thickness),
        StandardScaler(),
        RidgeCV(),
    )
    with warnings.catch_warnings():
        # 10 thickness columns are degenerate at a site (warned, not our topic)
        warnings.simplefilter("ignore", MedprepWarning)
        warnings.simplefilter("error", TargetProxyWarning)
        model.fit(X, y)
    assert find_target_proxies(table.drop(columns="age"), y) == []
