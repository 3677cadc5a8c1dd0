"""QuantileComBatHarmonizer(shrinkage="sites"): empirical Bayes across sites."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import Ridge
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import make_pipeline
from table_contract import check_table_contract

from sklearn_medprep import (
    ComBatHarmonizer,
    QuantileComBatHarmonizer,
    site_predictability,
)
from sklearn_medprep.datasets import make_multisite_features
from sklearn_medprep.harmonization._site_shrinkage import shrink_maps
from sklearn_medprep.model_selection import SiteStratifiedKFold

SIZES = (30, 45, 60, 25, 50, 40)


def _cohort(n_features=12, n_effect=3, seed=0, sizes=SIZES, tails=False):
    """Sites of unequal sizes; only the first ``n_effect`` features differ.

    Feature 0 differs in location, 1 in location and scale, 2 in scale (and
    so on cyclically); the others are the same distribution at every site.
    """
    rng = np.random.default_rng(seed)
    codes = np.repeat(np.arange(len(sizes)), sizes)
    n = codes.size
    if tails:
        x = rng.standard_t(5, size=(n, n_features))
    else:
        x = rng.standard_normal((n, n_features))
    shift = rng.normal(0.0, 1.0, len(sizes))
    scale = np.exp(rng.normal(0.0, 0.4, len(sizes)))
    for j in range(n_effect):
        if j % 3 in (1, 2):
            x[:, j] *= scale[codes]
        if j % 3 in (0, 1):
            x[:, j] += shift[codes]
    df = pd.DataFrame(x * 2.0 + 5.0, columns=[f"f{j}" for j in range(n_features)])
    df["site"] = np.array([f"s{i}" for i in range(len(sizes))])[codes]
    return df


def _direct(df, feats):
    """ComBat's standardization and the posterior means across sites, in numpy."""
    x = df[feats].to_numpy(float)
    codes = pd.factorize(df["site"], sort=True)[0]
    n_sites = codes.max() + 1
    n = np.bincount(codes)[:, None].astype(float)
    site_mean = np.stack([x[codes == i].mean(0) for i in range(n_sites)])
    grand = (n * site_mean).sum(0) / n.sum()
    var_pooled = ((x - site_mean[codes]) ** 2).mean(0)
    s = (x - grand) / np.sqrt(var_pooled)
    g_hat = np.stack([s[codes == i].mean(0) for i in range(n_sites)])
    d_hat = np.stack([s[codes == i].var(0, ddof=1) for i in range(n_sites)])
    v = d_hat / n
    tau2 = np.maximum(0.0, (g_hat**2 - v).mean(0))
    g_star = g_hat * tau2 / (tau2 + v)
    z = np.concatenate([(s[codes == i] - s[codes == i].mean(0)) / s[codes == i].std(0)
                        for i in range(n_sites)])
    kurt = (z**4).mean(0)
    w = (kurt - (n - 3) / (n - 1)) / n
    log_d = np.log(d_hat)
    centre = log_d.mean(0)
    # the centre estimated: the squared deviations over n_sites - 1
    t2 = np.maximum(0.0, ((log_d - centre) ** 2).sum(0) / (n_sites - 1) - w.mean(0))
    d_star = np.exp(centre + (log_d - centre) * t2 / (t2 + w))
    out = (s - g_star[codes]) / np.sqrt(d_star[codes]) * np.sqrt(var_pooled) + grand
    return g_star, d_star, tau2, t2, out


def test_posterior_means_equal_a_direct_computation():
    df = _cohort(tails=True)
    feats = [c for c in df.columns if c != "site"]
    h = QuantileComBatHarmonizer(n_quantiles=None, shrinkage="sites").fit(df)
    g_star, d_star, tau2, t2, out = _direct(df, feats)
    np.testing.assert_allclose(h.gamma_star_, g_star, rtol=0, atol=1e-12)
    np.testing.assert_allclose(h.delta_star_, d_star, rtol=1e-12)
    np.testing.assert_allclose(h.location_prior_var_, tau2, rtol=0, atol=1e-12)
    np.testing.assert_allclose(h.scale_prior_var_, t2, rtol=0, atol=1e-12)
    np.testing.assert_allclose(h.transform(df)[feats].to_numpy(), out,
                               rtol=0, atol=1e-10)
    # the features without a site effect are (nearly) left alone, those with
    # one get ComBat's full estimate: the opposite of ComBat's shrinkage
    assert np.all(tau2[3:] < tau2[[0, 1]].min() / 20)
    assert (np.abs(g_star[:, 0] / h.model_.gamma_hat[:, 0] - 1) < 0.1).all()


def test_shrink_maps_equal_a_direct_computation():
    rng = np.random.default_rng(1)
    site_q = np.sort(rng.normal(size=(4, 7, 3)), axis=1)
    pooled = np.sort(rng.normal(size=(7, 3)), axis=0)
    noise = rng.uniform(0.01, 0.3, size=(4, 7, 3))
    cells = np.ones((4, 3), dtype=bool)
    cells[2, 1] = False
    targets, factor = shrink_maps(site_q, pooled, noise, cells)
    disp = pooled[None] - site_q
    for j in range(3):
        keep = cells[:, j]
        d2 = (disp[keep, 1:-1, j] ** 2).mean(axis=1)
        v = noise[keep, 1:-1, j].mean(axis=1)
        tau2 = max(0.0, np.mean(d2 - v))
        np.testing.assert_allclose(factor[keep, j], tau2 / (tau2 + v), atol=1e-14)
    assert factor[2, 1] == 1.0
    np.testing.assert_allclose(targets, site_q + factor[:, None] * disp, atol=1e-14)
    # one factor per map in [0, 1]: each map stays monotone
    assert (np.diff(targets, axis=1) >= 0).all()


def test_less_held_out_site_signal_than_combat_where_sites_do_not_differ():
    # 3 of 100 heavy-tailed features carry a site effect: ComBat imprints each
    # site's sampling error on the other 97 (its prior across features keeps
    # about half of it), which a classifier finds on held-out rows; the prior
    # across sites leaves them nearly unchanged
    sizes = (40, 30, 50, 35, 45, 30)
    scores = {"ComBat": [], "ours": []}
    for seed in range(6):
        df = _cohort(n_features=100, n_effect=3, seed=seed, tails=True, sizes=sizes)
        feats = [c for c in df.columns if c != "site"]
        for label, h in (("ComBat", ComBatHarmonizer()),
                         ("ours", QuantileComBatHarmonizer(
                             n_quantiles=None, shrinkage="sites"))):
            scores[label].append(float(site_predictability(
                df, "site", feats, harmonizer=h, n_permutations=0,
                random_state=seed)))
    combat, ours = np.mean(scores["ComBat"]), np.mean(scores["ours"])
    assert ours < combat - 0.03, scores


def test_learned_from_the_training_rows_only():
    df = _cohort(n_features=5, tails=True)
    train, test = df.iloc[::2], df.iloc[1::2]
    fitted = QuantileComBatHarmonizer(n_quantiles=7, shrinkage="sites",
                                      random_state=3).fit(train)
    out = fitted.transform(test)
    single = pd.concat([fitted.transform(test.iloc[i : i + 1])
                        for i in range(0, len(test), 9)])
    np.testing.assert_array_equal(single.to_numpy(), out.iloc[::9].to_numpy())
    # the held-out rows take no part in the fit; the bootstrap is seeded
    refit = QuantileComBatHarmonizer(n_quantiles=7, shrinkage="sites",
                                     random_state=3).fit(train)
    np.testing.assert_array_equal(refit.site_targets_, fitted.site_targets_)
    np.testing.assert_array_equal(refit.transform(test).to_numpy(), out.to_numpy())
    # changing the training rows changes the fit
    other = QuantileComBatHarmonizer(n_quantiles=7, shrinkage="sites",
                                     random_state=3).fit(test)
    assert not np.allclose(other.transform(test).to_numpy(), out.to_numpy())


def test_quantile_maps_shrunk_towards_the_identity_by_their_noise():
    df = _cohort(n_features=6, n_effect=0, seed=2, sizes=(200,) * 6)
    # feature f0: skewed at sites s0-s2 (right) and s3-s5 (left), with the
    # same mean and variance everywhere, far beyond the quantiles' noise
    codes = pd.factorize(df["site"], sort=True)[0]
    skew = np.random.default_rng(0).exponential(size=len(df)) - 1.0
    df["f0"] = 5.0 + 2.0 * np.where(codes < 3, skew, -skew)
    h = QuantileComBatHarmonizer(n_quantiles=9, shrinkage="sites").fit(df)
    plain = QuantileComBatHarmonizer(n_quantiles=9).fit(df)
    assert h.map_shrinkage_.shape == (6, 6)
    assert ((h.map_shrinkage_ >= 0) & (h.map_shrinkage_ <= 1)).all()
    assert (h.map_shrinkage_[:, 0] > 0.6).all()  # the real shape effect is kept
    assert np.median(h.map_shrinkage_[:, 1:]) < 0.2  # noise: near the identity
    np.testing.assert_array_equal(
        plain.site_targets_, np.broadcast_to(plain.pooled_quantiles_,
                                             plain.site_quantiles_.shape))
    assert plain.map_shrinkage_ is None and plain.location_prior_var_ is None


def test_options():
    df = _cohort(n_features=6, tails=True)
    with pytest.raises(ValueError, match="needs eb=True"):
        QuantileComBatHarmonizer(shrinkage="sites", eb=False).fit(df)
    with pytest.raises(ValueError, match="shrinkage"):
        QuantileComBatHarmonizer(shrinkage="site").fit(df)
    # mean_only: the location alone
    h = QuantileComBatHarmonizer(shrinkage="sites", mean_only=True,
                                 n_quantiles=None).fit(df)
    assert h.scale_prior_var_ is None and (h.delta_star_ == 1).all()
    # the reference site is left unadjusted, the others shrunk towards it
    h = QuantileComBatHarmonizer(shrinkage="sites", reference_site="s2").fit(df)
    assert (h.gamma_star_[2] == 0).all() and (h.delta_star_[2] == 1).all()
    assert h.map_shrinkage_[2].tolist() == [1.0] * 6
    # NaN cells stay NaN and are left out of the estimates
    holes = df.copy()
    holes.iloc[::11, 2] = np.nan
    out = QuantileComBatHarmonizer(shrinkage="sites").fit(holes).transform(holes)
    assert out["f2"].isna().equals(holes["f2"].isna())
    assert np.isfinite(out.drop(columns="f2").to_numpy()).all()


def test_contract_with_covariates_and_a_protected_target_in_a_pipeline():
    df = make_multisite_features(240, 6, n_sites=4, site_effect=1.0, random_state=0)
    X, y = df.drop(columns="y"), df["y"]
    h = QuantileComBatHarmonizer(covariates=["age", "sex"], shrinkage="sites")
    # reproducible (the bootstrap is seeded), picklable, row order free
    out = check_table_contract(h, X, y)
    # the sites' true location effects are removed as ComBat removes them
    # (site_effect=1.0 is far beyond the sampling error: the prior keeps them;
    # the sites' different ages stay in both outputs)
    feats = list(h.features_)
    combat = ComBatHarmonizer(covariates=["age", "sex"]).fit(X, y).transform(X)
    gap = (out.groupby(X["site"])[feats].mean()
           - combat.groupby(X["site"])[feats].mean()).abs().to_numpy().max()
    raw = (X.groupby("site")[feats].mean()
           - combat.groupby(X["site"])[feats].mean()).abs().to_numpy().max()
    assert gap < 0.1 * raw, (gap, raw)
    pipe = make_pipeline(clone(h), Ridge())
    pred = cross_val_predict(pipe, X, y, cv=SiteStratifiedKFold(3), groups=X["site"])
    assert np.corrcoef(pred, y)[0, 1] > 0.5
