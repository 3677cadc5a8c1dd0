"""Does harmonization keep the signal? Age prediction on FCON1000 cortical thickness.

Ridge regression (standardized features, penalty by RidgeCV) predicts age from
the 150 cortical-thickness features of FCON1000
(../shared/data/multisite/pcn_fcon1000.csv, 1075 subjects of the 22 sites with
at least 5; the table stays outside the repository) under
``SiteStratifiedKFold(5)`` and ``LeaveOneSiteOut``, with:

- raw features (no harmonization);
- ComBat inside the pipeline without the target protected (the former recipe,
  ``protect_target="none"``);
- the recommended pipeline: ``ComBatHarmonizer(covariates=["sex"])`` inside the
  pipeline, age protected in fit (``protect_target="auto"``), location and scale;
- the same, location only (``mean_only=True``);
- the common mistake: ComBat on every subject with age as a covariate (each
  subject harmonized with its own age), then cross-validation; the same
  harmonization by neuroHarmonize, computed here, is the reference
  (``max|diff|``).

For each: MAE, R2, R2 minus the raw features' R2 and, under
SiteStratifiedKFold, the site predictability
(:func:`sklearn_medprep.site_predictability`: cross-validated balanced accuracy
of a linear classifier, chance 1/22, with the interval of 20 site-label
permutations) scored only on rows the harmonizer was not fitted on: the
harmonizer refitted on the training rows of 3 site-stratified outer folds, the
classifier cross-validated within each fold's held-out rows (``harmonizer=``).
The common mistake's table is scored on the rows it was harmonized on (as given),
as is the former protocol, the recommended pipeline's harmonized test rows
pooled over the 5 folds: both can fall below chance. Under LeaveOneSiteOut the
test site is new (``unseen_site="estimate"``) and a held-out fold is one site:
no site column.

``--quick`` runs the same table on a small synthetic cohort whose sites differ in
mean age (``make_multisite_features``), so that it works without the shared data.

Usage::

    python benchmarks/bench_target_protection.py            # FCON1000, ~3-5 min
    python benchmarks/bench_target_protection.py --quick    # synthetic, seconds
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data" / "multisite" / "pcn_fcon1000.csv"


def load_fcon1000(path):
    df = pd.read_csv(path)
    df = df[df["site"].map(df["site"].value_counts()) >= 5].reset_index(drop=True)
    feats = [c for c in df.columns if c.endswith("_thickness")]
    return df[[*feats, "site", "sex"]], df["age"].to_numpy(), feats


def load_quick():
    from sklearn_medprep.datasets import make_multisite_features

    df = make_multisite_features(
        n_subjects=240,
        n_features=30,
        n_sites=4,
        covariate_effect=0.6,
        random_state=0,
    )
    feats = [c for c in df.columns if c.startswith("f")]
    return df[[*feats, "site", "sex"]], df["age"].to_numpy(), feats


def load_table(args):
    """``(X, y, features, name)`` of ``--quick`` or ``--data``; None if absent."""
    if args.quick:
        X, y, feats = load_quick()
        return X, y, feats, (
            "synthetic stand-in (make_multisite_features, sites differ in age)"
        )
    if not args.data.is_file():
        print(
            f"skipped: {args.data} is absent (give --data, or run with --quick for "
            "a synthetic table)"
        )
        return None
    X, y, feats = load_fcon1000(args.data)
    return X, y, feats, "FCON1000 cortical thickness"


def ridge():
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))


def evaluate(X, y, feats, cv, harmonizer=None, pre_harmonized=None, site_only=False):
    """Out-of-fold age predictions and the pooled harmonized test rows."""
    from sklearn.base import clone

    pred = np.empty(len(y))
    tests = []
    for train, test in cv.split(X, y):
        if site_only:  # the site's own information about the target
            onehot = pd.get_dummies(X["site"], dtype=float)
            h_train, h_test = onehot.iloc[train], onehot.iloc[test]
        elif pre_harmonized is not None:
            h_train, h_test = pre_harmonized.iloc[train], pre_harmonized.iloc[test]
        elif harmonizer is None:
            h_train, h_test = X.iloc[train][feats], X.iloc[test][feats]
        else:
            h = clone(harmonizer).fit(X.iloc[train], y[train])
            h_train, h_test = h.transform(X.iloc[train]), h.transform(X.iloc[test])
        pred[test] = ridge().fit(h_train, y[train]).predict(h_test)
        tests.append(h_test)
    return pred, pd.concat(tests).sort_index()


def honest_site(X, y, feats, harmonizer=None, pre_harmonized=None,
                covariates=False):
    """Site predictability on rows the harmonizer was not fitted on.

    A harmonizer is refitted per outer fold (``harmonizer=``); a table
    harmonized beforehand can only be scored on the rows it was fitted on.
    """
    from sklearn_medprep import site_predictability

    covs = pd.DataFrame({"age": y, "sex": X["sex"]}, index=X.index)
    if pre_harmonized is not None:
        table = pre_harmonized[feats].assign(site=X["site"])
    else:
        table = X
    return site_predictability(
        table if harmonizer is not None else table[[*feats, "site"]],
        "site",
        feats,
        harmonizer=harmonizer,
        y=y,
        covariates=covs if covariates else None,
    )


def neuroharmonize_all_rows(X, y, feats):
    """The common mistake, by the reference tool: every row with its own age."""
    try:
        from neuroHarmonize import harmonizationLearn
    except ImportError:
        return None
    covars = pd.DataFrame(
        {
            "SITE": X["site"].to_numpy(),
            "age": y,
            "sex": pd.factorize(X["sex"], sort=True)[0].astype(float),
        }
    )
    with contextlib.redirect_stdout(io.StringIO()):
        _, adjusted = harmonizationLearn(X[feats].to_numpy(), covars)
    return adjusted


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="synthetic, seconds")
    parser.add_argument("--data", type=Path, default=DATA, help="pcn_fcon1000.csv")
    args = parser.parse_args(argv)

    from sklearn.metrics import mean_absolute_error, r2_score

    from sklearn_medprep import ComBatHarmonizer, site_predictability
    from sklearn_medprep.model_selection import LeaveOneSiteOut, SiteStratifiedKFold

    warnings.simplefilter("ignore")  # the new-site warnings of LeaveOneSiteOut
    loaded = load_table(args)
    if loaded is None:
        return 0
    X, y, feats, name = loaded
    n_sites = X["site"].nunique()
    print(
        f"{name}: {len(X)} subjects, {len(feats)} features, {n_sites} sites; "
        f"age prediction, ridge; site predictability chance {1 / n_sites:.3f}"
    )

    def combat(**kwargs):
        return ComBatHarmonizer(covariates=["sex"], **kwargs)

    mistake_model = ComBatHarmonizer(covariates=["sex", "age"])
    mistake = mistake_model.fit_transform(X.assign(age=y))
    reference = neuroharmonize_all_rows(X, y, feats)

    setups = {
        "SiteStratifiedKFold(5)": (
            SiteStratifiedKFold(5, shuffle=True, random_state=0),
            {},
        ),
        "LeaveOneSiteOut": (LeaveOneSiteOut(), {"unseen_site": "estimate"}),
    }
    figures = {}
    for cv_name, (cv, extra) in setups.items():
        rows = {
            "raw features": {},
            "ComBat in pipeline, target not protected": {
                "harmonizer": combat(protect_target="none", **extra)
            },
            "recommended: ComBat in pipeline, target protected": {
                "harmonizer": combat(**extra)
            },
            "same, target_scale='project'": {
                "harmonizer": combat(target_scale="project", **extra)
            },
            "same, location only (mean_only=True)": {
                "harmonizer": combat(mean_only=True, **extra)
            },
            "location only, no EB (site location fully removed)": {
                "harmonizer": combat(mean_only=True, eb=False, **extra)
            },
            "common mistake: ComBat on all rows, age as covariate": {
                "pre_harmonized": mistake
            },
        }
        if not extra:  # a seen site's own information about age
            rows["site alone (one-hot site, no features)"] = {"site_only": True}
        print(f"\n{cv_name}")
        print(f"  {'':<54}{'MAE':>6}{'R2':>8}{'R2-raw':>8}{'site':>7}{'s':>6}")
        raw_r2 = None
        for label, kwargs in rows.items():
            start = time.perf_counter()
            pred, h_test = evaluate(X, y, feats, cv, **kwargs)
            r2 = r2_score(y, pred)
            raw_r2 = r2 if raw_r2 is None else raw_r2
            if kwargs.get("site_only") or extra:
                site_text = "      -"
                figures[(cv_name, label)] = (r2, None)
            else:
                site = honest_site(X, y, feats, **kwargs)
                figures[(cv_name, label)] = (r2, site)
                site_text = f"{site:>7.2f}"
                if label.startswith("recommended"):
                    former = site_predictability(
                        h_test[feats].assign(site=X["site"]), "site"
                    )
            print(
                f"  {label:<54}{mean_absolute_error(y, pred):>6.2f}{r2:>8.3f}"
                f"{r2 - raw_r2:>+8.3f}{site_text}{time.perf_counter() - start:>6.0f}"
            )
    cv_name = "SiteStratifiedKFold(5)"
    print(
        f"\nsite predictability, {cv_name} rows (chance 1/{n_sites} = "
        f"{1 / n_sites:.3f}; 20 site-label permutations):"
    )
    for (name, label), (_, site) in figures.items():
        if name == cv_name and site is not None:
            print(f"  {label:<54}{site.summary()}")
    print(
        "  former protocol, recommended: test rows pooled over the 5 folds, "
        f"scored as given: {former.summary()}"
    )
    adjusted = {
        label: honest_site(X, y, feats, covariates=True, **kwargs)
        for label, kwargs in (
            ("raw features", {}),
            ("recommended", {"harmonizer": combat()}),
        )
    }
    print(
        "  adjusted for age and sex: "
        + "; ".join(f"{k} {v.summary()}" for k, v in adjusted.items())
    )
    r2_raw, site_raw = figures[(cv_name, "raw features")]
    r2_rec, site_rec = figures[
        (cv_name, "recommended: ComBat in pipeline, target protected")
    ]
    print(
        f"\nrecommended vs raw ({cv_name}): R2 ratio {r2_rec / r2_raw:.3f}, "
        f"R2 difference {r2_rec - r2_raw:+.3f} (goal >= -0.02); site predictability "
        f"ratio {site_rec / site_raw:.3f} (goal <= 0.5)"
    )
    # neuroCombat's mean-only empirical Bayes shrinks each site's location as
    # if the site were one observation:
    # gamma* = gamma_bar + t2 / (t2 + 1) * (gamma - gamma_bar)
    priors = combat(mean_only=True).fit(X, y).model_.priors
    t2 = priors["t2"][np.isfinite(priors["t2"])]
    removed = t2 / (t2 + 1)
    print(
        "mean_only=True with EB removes a site's mean location over features, but "
        "only a share t2/(t2+1) of each feature's deviation from it: "
        f"median {np.median(removed):.2f} over sites (min {removed.min():.2f}, "
        f"max {removed.max():.2f})"
    )
    if reference is not None:
        diff = np.abs(mistake[feats].to_numpy() - reference).max()
        print(f"common mistake vs neuroHarmonize, same rows: max|diff| {diff:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
