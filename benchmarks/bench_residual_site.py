"""The site signal ComBat leaves: where it is, what removes it. ABIDE and FCON1000.

Site predictability is measured as everywhere in this library on rows the
harmonizer never saw (:func:`sklearn_medprep.site_predictability` with
``harmonizer=``): the harmonizer is refitted on the training rows of 3
site-stratified outer folds (``SiteStratifiedKFold``, every site in every
training fold), a linear site classifier (``RidgeClassifier``, classes
balanced, after standardization) is cross-validated (5 folds) *within* each
fold's held-out rows, and the balanced accuracy is the mean over the 3 outer
folds, with 20 permutations of the scored rows' site labels. Chance is
``1 / n_sites``. On ABIDE the score moves by up to 0.1 with the fold shuffle,
so each method's row is the mean over 3 split seeds (with their range; the
permutation interval is the first seed's).

ABIDE: the 68 MRIQC image-quality metrics of 1101 scans from 17 sites
(../shared/data/multisite/mriqclearn_abide_iqms.tsv; the table stays outside
the repository), no covariates. Printed:

- the floors of the protocol: pure Gaussian noise with ABIDE's site sizes
  (raw, harmonized by ComBat: the site estimates' own error, shared by the
  held-out rows of a site, is what the classifier then finds, and with the
  empirical Bayes across sites, which should leave noise nearly unchanged),
  and ABIDE with its site labels permuted before harmonization (the same on
  ABIDE's skewed, heavy-tailed distributions: what ComBat scores with no true
  site effect to remove), each the mean over 3 seeds of noise, permutation
  and split;
- raw, ComBat, CovBat, neuroHarmonize (when importable: in the numpy 1 venv
  only; wrapped as a transformer, fitted on the training rows,
  ``harmonizationApply`` on the held-out ones),
  ``QuantileComBatHarmonizer(n_quantiles=None)`` (ComBat with the metrics
  that are constant within some training site pooled) and
  ``QuantileComBatHarmonizer()`` (and the residuals' quantiles matched per
  site, 21 quantiles), and both with ``shrinkage="sites"`` (empirical Bayes
  across sites per feature instead of ComBat's across features: each site's
  location, log-scale and quantile map shrunk by its own sampling error; also
  on the permuted-site floor, where it should approach chance);
- the same methods scored by a nonlinear site classifier (a random forest,
  split seed 0, no permutations): what a flexible downstream model finds;
- a benchmark-only prototype (``PrincipalAxesEB``, below): the same
  empirical Bayes across sites on the principal axes of the within-site
  correlation instead of per feature, on the permuted-site floor and on
  ABIDE (linear and forest); no covariates, so not on FCON1000;
- the diagnosis: ComBat's score on the metrics constant within some site
  alone and on the others alone (linear and forest), with non-parametric
  empirical Bayes, and the best single metric; and the decomposition of the
  across-site prior (fitted on all rows, real and permuted sites): how much
  of each site's location estimate it keeps, and on how many metrics none.

FCON1000: 150 cortical-thickness features, 1075 subjects of the 22 sites with
at least 5 (../shared/data/multisite/pcn_fcon1000.csv): site predictability
adjusted for age and sex (``covariates=``), and age R2 (ridge, standardized
features, penalty by RidgeCV) under ``SiteStratifiedKFold(5)``, each
harmonizer inside the fold, age protected in ``fit`` (neuroHarmonize cannot
protect a target it will not see at transform: it is fitted with sex only).

Every method runs with one BLAS thread (threadpoolctl) and n_jobs=1.
``--quick`` replaces both tables by small synthetic ones (a cohort with
site-constant acquisition columns; ``make_multisite_features`` whose sites
differ in age) and uses 2 permutations, so that it runs in seconds.

Usage::

    python benchmarks/bench_residual_site.py          # ABIDE + FCON1000, ~4-6 min
    python benchmarks/bench_residual_site.py --quick  # synthetic, seconds
"""

import argparse
import contextlib
import io
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
SHARED = REPO.parent / "shared" / "data" / "multisite"
ABIDE = SHARED / "mriqclearn_abide_iqms.tsv"
FCON = SHARED / "pcn_fcon1000.csv"
#: Seeds of the outer and inner fold shuffles: the ABIDE score moves by up to
#: 0.1 between splits (ComBat 0.285-0.391 over 5 seeds), so the mean is printed
SPLIT_SEEDS = (0, 1, 2)


class NeuroHarmonizer(TransformerMixin, BaseEstimator):
    """neuroHarmonize as a transformer: learn on the training rows, apply."""

    def __init__(self, features=None, covariates=()):
        self.features = features
        self.covariates = covariates

    def _covars(self, X):
        covars = pd.DataFrame({"SITE": X["site"].astype(str).to_numpy()})
        for name in self.covariates:
            values = X[name]
            if not pd.api.types.is_numeric_dtype(values):
                values = (values == sorted(values.unique())[0]).astype(float)
            covars[name] = values.to_numpy(dtype=float)
        return covars

    def fit(self, X, y=None):
        from neuroHarmonize import harmonizationLearn

        with contextlib.redirect_stdout(io.StringIO()):
            self.model_, _ = harmonizationLearn(
                X[self.features].to_numpy(dtype=float), self._covars(X)
            )
        return self

    def transform(self, X):
        from neuroHarmonize import harmonizationApply

        with contextlib.redirect_stdout(io.StringIO()):
            out = harmonizationApply(
                X[self.features].to_numpy(dtype=float), self._covars(X), self.model_
            )
        return pd.DataFrame(out, index=X.index, columns=self.features)


def _across_sites(estimate, noise, centre=0.0):
    """Posterior means under the library's prior across sites (rows), per column.

    :func:`sklearn_medprep.harmonization._site_prior.posterior_factor`, every
    cell entering: the estimates moved towards ``centre`` (known, or
    ``"mean"``: estimated) by their posterior factors.
    """
    from sklearn_medprep.harmonization._site_prior import posterior_factor

    factor, centre, _ = posterior_factor(
        estimate, noise, np.ones(estimate.shape, dtype=bool), centre=centre)
    return centre + factor * (estimate - centre)


class PrincipalAxesEB(TransformerMixin, BaseEstimator):
    """Benchmark-only prototype: empirical Bayes across sites on principal axes.

    No covariates, no NaN, training sites only (ABIDE's setting). Features
    constant within a training site are pooled (the training mean). The
    others are standardized as by ComBat (grand mean, pooled within-site
    variance) and rotated onto the principal axes of their pooled within-site
    correlation; each site's location and log-scale along each axis are
    shrunk across sites as ``QuantileComBatHarmonizer(shrinkage="sites")``
    shrinks them per feature, removed, and the rows rotated back (the null
    space, axes without within-site variance, kept). A per-site affine map:
    linear relations between features (ABIDE's metrics are nearly collinear)
    are kept, where per-feature corrections with different factors break them.
    """

    def __init__(self, features=None, tol=1e-8):
        self.features = features
        self.tol = tol

    def fit(self, X, y=None):
        from sklearn_medprep.harmonization._site_prior import log_variance_noise

        x = X[self.features].to_numpy(float)
        self.sites_, codes = np.unique(X["site"].to_numpy(), return_inverse=True)
        n_sites = self.sites_.size
        rows = [codes == i for i in range(n_sites)]
        self.constant_ = np.array([np.ptp(x[r], axis=0) == 0 for r in rows]).any(0)
        self.mean_ = x.mean(axis=0)
        xv = x[:, ~self.constant_]
        n = np.bincount(codes)[:, None].astype(float)
        site_mean = np.stack([xv[r].mean(axis=0) for r in rows])
        self.grand_ = (n * site_mean).sum(axis=0) / n.sum()
        within = xv - site_mean[codes]
        self.sd_ = np.sqrt((within**2).mean(axis=0))
        corr = (within / self.sd_).T @ (within / self.sd_) / len(xv)
        lam, axes = np.linalg.eigh(corr)
        self.axes_ = axes[:, lam > self.tol * lam.max()]
        z = (xv - self.grand_) / self.sd_ @ self.axes_
        g = np.stack([z[r].mean(axis=0) for r in rows])
        v = np.stack([z[r].var(axis=0, ddof=1) for r in rows])
        self.gamma_ = _across_sites(g, v / n)
        zc = np.concatenate([(z[r] - g[i]) / np.sqrt(v[i]) for i, r in enumerate(rows)])
        kurt = (zc**4).mean(axis=0)
        noise = log_variance_noise(kurt, n)  # the library's, as shrinkage="sites"
        self.delta_ = np.exp(_across_sites(np.log(v), noise, centre="mean"))
        return self

    def transform(self, X):
        x = X[self.features].to_numpy(float).copy()
        codes = np.searchsorted(self.sites_, X["site"].to_numpy())
        s = (x[:, ~self.constant_] - self.grand_) / self.sd_
        z = s @ self.axes_
        null = s - z @ self.axes_.T
        z = (z - self.gamma_[codes]) / np.sqrt(self.delta_[codes])
        x[:, ~self.constant_] = (z @ self.axes_.T + null) * self.sd_ + self.grand_
        x[:, self.constant_] = self.mean_[self.constant_]
        return pd.DataFrame(x, columns=self.features, index=X.index)


def neuroharmonize_available():
    try:
        import neuroHarmonize  # noqa: F401
    except ImportError:
        return False
    return True


def load_abide(quick):
    """``(table, features, name)``: ABIDE's IQMs, or a synthetic stand-in."""
    if quick:
        from sklearn_medprep.datasets import make_multisite_features

        rng = np.random.default_rng(0)
        df = make_multisite_features(200, 10, n_sites=4, site_effect=1.5,
                                     random_state=0)
        df = df.drop(columns=["y", "age", "sex"])
        codes = pd.factorize(df["site"], sort=True)[0]
        # acquisition columns: constant within sites 0-2, a few values at site 3
        for j, name in enumerate(("size_x", "spacing_x")):
            values = np.array([1.0, 1.2, 0.9, 1.1])[codes] * (j + 1)
            rare = (codes == 3) & (rng.random(len(df)) < 0.2)
            df[name] = np.where(rare, values + 0.3, values)
        feats = [c for c in df.columns if c != "site"]
        name = "synthetic stand-in (200 x 12, 4 sites, 2 acquisition columns)"
        return df, feats, name
    if not ABIDE.is_file():
        return None
    df = pd.read_csv(ABIDE, sep="\t")
    feats = [c for c in df.columns if c not in ("subject_id", "site")
             and not c.startswith("rater")]
    df[feats] = df[feats].astype(float)
    df = df[[*feats, "site"]]
    return df, feats, (f"ABIDE MRIQC IQMs ({len(df)} scans, {len(feats)} metrics, "
                       f"{df['site'].nunique()} sites)")


def load_fcon(quick):
    from bench_target_protection import load_fcon1000, load_quick

    if quick:
        X, y, feats = load_quick()
        return X, y, feats, "synthetic stand-in (make_multisite_features)"
    if not FCON.is_file():
        return None
    X, y, feats = load_fcon1000(FCON)
    return X, y, feats, (f"FCON1000 cortical thickness ({len(X)} subjects, "
                         f"{len(feats)} features, {X['site'].nunique()} sites)")


def forest():
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=100, class_weight="balanced",
                                  random_state=0, n_jobs=1)


def score(table, feats, harmonizer, n_perm, covariates=None, y=None,
          random_state=0, classifier=None):
    from sklearn_medprep import site_predictability

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # over-correction: in the verdict
        return site_predictability(
            table, "site", feats, harmonizer=harmonizer, n_permutations=n_perm,
            covariates=covariates, y=y, random_state=random_state,
            classifier=classifier,
        )


def methods(feats, covariates=None):
    from sklearn_medprep import (
        ComBatHarmonizer,
        CovBatHarmonizer,
        QuantileComBatHarmonizer,
    )

    kw = dict(features=feats, covariates=covariates)
    out = {
        "raw": None,
        "ComBat": ComBatHarmonizer(**kw),
        "CovBat": CovBatHarmonizer(**kw),
    }
    if neuroharmonize_available():
        out["neuroHarmonize"] = NeuroHarmonizer(feats, covariates or ())
    out["QuantileComBat, pooling only"] = QuantileComBatHarmonizer(
        n_quantiles=None, **kw)
    out["QuantileComBat, pooling, across-site EB"] = QuantileComBatHarmonizer(
        n_quantiles=None, shrinkage="sites", **kw)
    out["QuantileComBat, across-site EB"] = QuantileComBatHarmonizer(
        shrinkage="sites", **kw)
    out["QuantileComBat (ours)"] = QuantileComBatHarmonizer(**kw)
    return out


def abide_section(quick, n_perm):
    global SPLIT_SEEDS
    if quick:  # one split in the smoke run
        SPLIT_SEEDS = SPLIT_SEEDS[:1]
    from sklearn_medprep import ComBatHarmonizer, QuantileComBatHarmonizer

    loaded = load_abide(quick)
    if loaded is None:
        print(f"\n{ABIDE} absent: ABIDE section skipped")
        return {}
    df, feats, name = loaded
    n_sites = df["site"].nunique()
    sizes = df["site"].to_numpy()
    constant = [c for c in feats if (df.groupby("site")[c].nunique() <= 1).any()]
    others = [c for c in feats if c not in constant]
    print(f"\n{name}: site predictability, held-out rows (chance 1/{n_sites} = "
          f"{1 / n_sites:.3f}; {n_perm} site-label permutations)")
    combat = ComBatHarmonizer(features=feats)
    floors = {
        "floor: Gaussian noise, raw": ("noise", None),
        "floor: Gaussian noise, ComBat": ("noise", combat),
        "floor: Gaussian noise, across-site EB": (
            "noise", QuantileComBatHarmonizer(
                features=feats, n_quantiles=None, shrinkage="sites")),
        "floor: sites permuted, raw": ("permuted", None),
        "floor: sites permuted, ComBat": ("permuted", combat),
        "floor: sites permuted, QuantileComBat": (
            "permuted", QuantileComBatHarmonizer(features=feats)),
        "floor: sites permuted, pooling, across-site EB": (
            "permuted", QuantileComBatHarmonizer(
                features=feats, n_quantiles=None, shrinkage="sites")),
        "floor: sites permuted, QuantileComBat, across-site EB": (
            "permuted", QuantileComBatHarmonizer(features=feats,
                                                 shrinkage="sites")),
        "floor: sites permuted, prototype, principal axes": (
            "permuted", PrincipalAxesEB(feats)),
    }
    tables = {}
    for seed in SPLIT_SEEDS:  # a fresh noise table and permutation per seed
        rng = np.random.default_rng(seed)
        noise = pd.DataFrame(rng.standard_normal((len(df), len(feats))),
                             columns=feats)
        noise["site"] = sizes
        tables[seed] = {"noise": noise,
                        "permuted": df.assign(site=rng.permutation(sizes))}
    results = {}
    for label, (kind, harmonizer) in floors.items():
        start = time.process_time()
        values = [float(score(tables[seed][kind], feats, harmonizer, 0,
                              random_state=seed)) for seed in SPLIT_SEEDS]
        print(f"  {label:<44} {np.mean(values):.3f} ({len(values)} seeds "
              f"{min(values):.3f}-{max(values):.3f}) "
              f"[{time.process_time() - start:.1f} CPU s]")
    for label, harmonizer in methods(feats).items():
        start = time.process_time()
        try:
            seeds = [score(df, feats, harmonizer, n_perm if seed == 0 else 0,
                           random_state=seed) for seed in SPLIT_SEEDS]
        except Exception as exc:  # neuroHarmonize's failures are reported
            print(f"  {label:<44} failed: {type(exc).__name__}: {exc}")
            continue
        values = [float(v) for v in seeds]
        results[label] = float(np.mean(values))
        print(f"  {label:<44} {np.mean(values):.3f} (chance {1 / n_sites:.3f}; "
              f"{len(values)} split seeds {min(values):.3f}-{max(values):.3f}) "
              f"seed 0: {seeds[0].summary()} "
              f"[{time.process_time() - start:.1f} CPU s]")
    label = "prototype: across-site EB on principal axes"
    values = [float(score(df, feats, PrincipalAxesEB(feats), 0, random_state=seed))
              for seed in SPLIT_SEEDS]
    tree = float(score(df, feats, PrincipalAxesEB(feats), 0, classifier=forest()))
    print(f"  {label:<44} {np.mean(values):.3f} ({len(values)} split seeds "
          f"{min(values):.3f}-{max(values):.3f}); forest (split seed 0) "
          f"{tree:.3f}")
    print("nonlinear site classifier (random forest, 100 trees, classes "
          "balanced; split seed 0, no permutations):")
    forest_scores = {}
    for label, harmonizer in methods(feats).items():
        start = time.process_time()
        try:
            value = float(score(df, feats, harmonizer, 0, classifier=forest()))
        except Exception as exc:
            print(f"  {label:<44} failed: {type(exc).__name__}: {exc}")
            continue
        forest_scores[label] = value
        print(f"  forest, {label:<36} {value:.3f} "
              f"[{time.process_time() - start:.1f} CPU s]")
    print(f"diagnosis: ComBat's score on {len(constant)} metrics constant within "
          "some site and on the others, and single metrics")
    for label, subset in ((f"the {len(constant)} site-constant metrics", constant),
                          (f"the {len(others)} others", others)):
        values = [float(score(df, subset, ComBatHarmonizer(features=subset), 0,
                              random_state=seed)) for seed in SPLIT_SEEDS]
        print(f"  ComBat, {label:<36} {np.mean(values):.3f} ({len(values)} split "
              f"seeds {min(values):.3f}-{max(values):.3f})")
        value = float(score(df, subset, ComBatHarmonizer(features=subset), 0,
                            classifier=forest()))
        print(f"  forest, ComBat, {label:<28} {value:.3f} (split seed 0)")
    values = [float(score(df, feats, ComBatHarmonizer(features=feats,
                                                      parametric=False), 0,
                          random_state=seed)) for seed in SPLIT_SEEDS]
    print(f"  ComBat, non-parametric EB, all metrics{'':<6}{np.mean(values):.3f} "
          f"({len(values)} split seeds {min(values):.3f}-{max(values):.3f})")
    singles = {c: float(score(df, [c], ComBatHarmonizer(features=[c]), 0))
               for c in feats}
    best = max(singles, key=singles.get)
    print(f"  ComBat, best single metric ({best}): "
          f"{singles[best]:.3f} (chance {1 / n_sites:.3f})")
    varying = df[others].to_numpy(float)
    within = varying - df.groupby("site")[others].transform("mean").to_numpy(float)
    lam = np.linalg.eigvalsh(np.corrcoef(within / within.std(axis=0), rowvar=False))
    print(f"  within-site correlation of the {len(others)} others: "
          f"{int((lam < 1e-3 * lam.max()).sum())} of {lam.size} principal axes "
          f"with variance below 1e-3 of the largest, "
          f"{int((lam < 1e-2 * lam.max()).sum())} below 1e-2")
    for kind, table in (("real sites", df), ("sites permuted", tables[0]["permuted"])):
        keep, none, total = across_site_decomposition(table, feats)
        print(f"  across-site prior, {kind}: location estimate kept, median over "
              f"site/metric pairs {keep:.3f}; no correction (tau2 = 0) on "
              f"{none} of {total} metrics")
    if "ComBat" in results and "QuantileComBat (ours)" in results:
        print(f"ABIDE ours / ComBat: {results['QuantileComBat (ours)']:.3f} / "
              f"{results['ComBat']:.3f} (goal <= {2 / n_sites:.3f} = 2x chance; "
              "means over the split seeds); forest "
              f"{forest_scores.get('QuantileComBat (ours)', np.nan):.3f} / "
              f"{forest_scores.get('ComBat', np.nan):.3f}")
    return results


def across_site_decomposition(table, feats):
    """``(median kept, metrics with tau2 = 0, metrics shrunk)``, all rows."""
    from sklearn_medprep import QuantileComBatHarmonizer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        h = QuantileComBatHarmonizer(features=feats, n_quantiles=None,
                                     shrinkage="sites").fit(table)
    tau2 = h.location_prior_var_
    shrunk = np.isfinite(tau2)
    cells = shrunk[None, :] & (h.model_.gamma_hat != 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        kept = np.where(cells, h.gamma_star_ / h.model_.gamma_hat, np.nan)
    return float(np.nanmedian(kept)), int((tau2[shrunk] == 0).sum()), int(shrunk.sum())


def fcon_section(quick, n_perm):
    from bench_target_protection import evaluate
    from sklearn.metrics import r2_score

    from sklearn_medprep.model_selection import SiteStratifiedKFold

    loaded = load_fcon(quick)
    if loaded is None:
        print(f"\n{FCON} absent: FCON1000 section skipped")
        return {}
    X, y, feats, name = loaded
    n_sites = X["site"].nunique()
    covs = pd.DataFrame({"age": y, "sex": X["sex"]}, index=X.index)
    print(f"\n{name}: age R2 (ridge, SiteStratifiedKFold(5), age protected in fit) "
          f"and site predictability adjusted for age and sex (chance "
          f"{1 / n_sites:.3f}; {n_perm} permutations)")
    cv = SiteStratifiedKFold(5, shuffle=True, random_state=0)
    r2s = {}
    for label, harmonizer in methods(feats, ["sex"]).items():
        start = time.process_time()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pred, _ = evaluate(X, y, feats, cv, harmonizer=harmonizer)
            s = score(X, feats, harmonizer, n_perm, covariates=covs, y=y)
        except Exception as exc:
            print(f"  {label:<44} failed: {type(exc).__name__}: {exc}")
            continue
        r2s[label] = r2_score(y, pred)
        print(f"  {label:<44} age R2 {r2s[label]:.3f}  site {s.summary()} "
              f"[{time.process_time() - start:.1f} CPU s]")
    if "ComBat" in r2s and "QuantileComBat (ours)" in r2s:
        print(f"FCON1000 age R2 ours - ComBat: "
              f"{r2s['QuantileComBat (ours)'] - r2s['ComBat']:+.3f} "
              "(goal within 0.02)")
    return r2s


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="synthetic, seconds")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    n_perm = 2 if args.quick else 20
    print("method: harmonizer refitted on the training rows of 3 site-stratified "
          "outer folds, site classifier (RidgeClassifier, balanced) 5-fold CV "
          "within each fold's held-out rows, mean over folds; 1 BLAS thread, "
          "n_jobs=1")
    if not neuroharmonize_available():
        print("neuroHarmonize is not installed (numpy 1 venv only): its rows are "
              "left out")
    with threadpool_limits(1):
        abide_section(args.quick, n_perm)
        fcon_section(args.quick, n_perm)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
