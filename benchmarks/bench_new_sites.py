"""A site unseen in ``fit``: does harmonizing it keep the signal? FCON1000, LOSO.

Ridge regression (standardized features, penalty by RidgeCV) predicts age from
the 150 cortical-thickness features of FCON1000
(../shared/data/multisite/pcn_fcon1000.csv, 1075 subjects of the 22 sites with
at least 5 subjects; the table stays outside the repository) under
``LeaveOneSiteOut``: in every fold the test site is new to the harmonizer,
which is fitted on the other 21 sites with age protected
(``ComBatHarmonizer(covariates=["sex"])``, ``fit(X, y)``), and the ridge model
is fitted on the harmonized training rows. The options for the new site's
rows, side by side:

- raw features (no harmonization at all);
- ``unseen_site="passthrough"``: training sites harmonized, the new site not;
- ``unseen_site="estimate"``: the new site's location and scale from its own
  rows, the target at its training centre (the former recommendation);
- ``unseen_site="estimate_outside_target"``: the same outside the span of the
  protected target's coefficients;
- ``unseen_site="estimate_prior"``: the new site's mean split between its
  location and a shift of its target distribution, each with a prior learned
  on the training sites (how the sites' locations differ, how far their mean
  age moves; the age effect as a cubic spline);
- ``unseen_site="estimate_prior_cov"``: the same with the features'
  covariances learned on the training sites (the within-site covariance of
  the noise of the new site's mean, Ledoit-Wolf; the site locations'
  covariance less the noise of the training sites' own estimates) and the
  new site's scale shrunk per feature towards the training sites' scales;
  with ``--decompose``, also with each of its parts undone (diagonal
  noise; the site covariance not debiased; the scale by empirical Bayes
  across features, as ``"estimate_prior"``; no outlier rule);
- each of the estimates (and ``"passthrough"``) with ``mean_only=True``
  and (the estimates) with
  ``target_scale="project"``; with ``--smooth``, also with
  ``protect_target="smooth"`` (a ComBat-GAM spline of age: its span has the
  spline's dimension; slower, the penalty is cross-validated in every fold).

For each: R2 and MAE of the out-of-fold age predictions, R2 minus the raw
features', and how predictable the sites stay: the held-out rows of all folds
(each harmonized by a harmonizer that never saw its site) pooled, and a linear
site classifier cross-validated within them
(:func:`sklearn_medprep.site_predictability`, balanced accuracy, chance 1/22),
the features first adjusted for age and sex by least squares so that the
sites' different age ranges do not count as site signal.

``--transfer`` measures the same options once more on sites that FCON1000
does not have: the harmonizer and the ridge model are fitted on all 22
FCON1000 sites, then the 546 subjects of the 6 OpenNeuro sites of
../shared/data/multisite/pcn_OpenNeuroTransfer_ct_{tr,te}.csv (mean age 25,
5 to 73 years) are transformed as new sites: R2 and MAE of their age
predictions, and their site predictability (chance 1/6).

``--quick`` runs the same table on a small synthetic cohort whose sites differ
in mean age (``make_multisite_features``), so that it works without the data.

Usage::

    python benchmarks/bench_new_sites.py            # FCON1000, a few minutes
    python benchmarks/bench_new_sites.py --smooth   # + the spline options
    python benchmarks/bench_new_sites.py --decompose  # + estimate_prior_cov's parts
    python benchmarks/bench_new_sites.py --transfer   # fit FCON1000, test OpenNeuro
    python benchmarks/bench_new_sites.py --quick    # synthetic, seconds
    python benchmarks/bench_new_sites.py --options "raw features" \
        "estimate_prior, mean_only"                 # only these rows
"""

import argparse
import dataclasses
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_target_protection import (  # noqa: E402
    DATA,
    evaluate,
    load_fcon1000,
    load_table,
    ridge,
)


def undone(part):
    """A ComBatHarmonizer whose ``"estimate_prior_cov"`` prior lacks ``part``.

    ``"noise"``: the noise covariance cut to its diagonal; ``"sites"``: the
    site locations' covariance ``G' G / n_sites``, not debiased; ``"scale"``:
    no scale prior (the new site's scale by empirical Bayes across its
    features, as ``"estimate_prior"``); ``"outlier"``: no outlier rule (the
    split never inflates the site covariance).
    """
    from sklearn_medprep import ComBatHarmonizer

    class Undone(ComBatHarmonizer):
        def fit(self, X, y=None, **kwargs):
            super().fit(X, y, **kwargs)
            prior = self.new_site_prior_
            if part == "noise":
                change = {"noise_cov": np.diag(np.diag(prior.noise_cov))}
            elif part == "outlier":
                change = {"shift_limit": np.inf}
            elif part == "sites":
                g = prior.site_locations
                change = {"site_cov": g.T @ g / g.shape[0]}
            else:
                change = {"log_scale_mean": None, "log_scale_var": None}
            self.new_site_prior_ = dataclasses.replace(prior, **change)
            return self

    return Undone


def options(smooth, decompose=False):
    from sklearn_medprep import ComBatHarmonizer

    def combat(**kwargs):
        return ComBatHarmonizer(covariates=["sex"], **kwargs)

    out = {"raw features": None}
    out["passthrough"] = combat(unseen_site="passthrough")
    out["passthrough, mean_only"] = combat(unseen_site="passthrough", mean_only=True)
    for policy in ("estimate", "estimate_outside_target", "estimate_prior",
                   "estimate_prior_cov"):
        out[policy] = combat(unseen_site=policy)
        out[f"{policy}, mean_only"] = combat(unseen_site=policy, mean_only=True)
        out[f"{policy}, target_scale='project'"] = combat(
            unseen_site=policy, target_scale="project"
        )
        if smooth:
            out[f"{policy}, smooth age"] = combat(
                unseen_site=policy, protect_target="smooth", random_state=0
            )
            out[f"{policy}, smooth age, mean_only"] = combat(
                unseen_site=policy,
                protect_target="smooth",
                mean_only=True,
                random_state=0,
            )
    if decompose:
        for part, label in (("noise", "diagonal noise"),
                            ("sites", "site cov. not debiased"),
                            ("scale", "no scale prior"),
                            ("outlier", "no outlier rule")):
            for scale in ("centre", "project"):
                suffix = ", 'project'" if scale == "project" else ""
                out[f"estimate_prior_cov, {label}{suffix}"] = undone(part)(
                    covariates=["sex"], unseen_site="estimate_prior_cov",
                    target_scale=scale,
                )
    return out


def transfer(chosen, data):
    """Fit on every FCON1000 site, transform the 6 OpenNeuro sites as new."""
    from sklearn.base import clone
    from sklearn.metrics import mean_absolute_error, r2_score

    from sklearn_medprep import site_predictability

    paths = [data.with_name(f"pcn_OpenNeuroTransfer_ct_{p}.csv") for p in ("tr", "te")]
    if not all(p.is_file() for p in paths):
        print(f"skipped: {paths[0]} or {paths[1]} is absent")
        return
    X, y, feats = load_fcon1000(data)
    new = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    Xn, yn = new[[*feats, "site", "sex"]], new["age"].to_numpy()
    covs = pd.DataFrame({"age": yn, "sex": Xn["sex"]}, index=Xn.index)
    n_new = Xn["site"].nunique()
    print(
        f"transfer: fitted on the {X['site'].nunique()} FCON1000 sites "
        f"({len(X)} subjects), {len(Xn)} subjects of {n_new} OpenNeuro sites "
        f"new (mean age {yn.mean():.1f}); site predictability among them, "
        f"chance {1 / n_new:.3f}"
    )
    for label, harmonizer in chosen.items():
        start = time.perf_counter()
        if harmonizer is None:
            h_train, h_new = X[feats], Xn[feats]
        else:
            h = clone(harmonizer).fit(X, y)
            h_train, h_new = h.transform(X), h.transform(Xn)
        pred = ridge().fit(h_train, y).predict(h_new)
        seconds = time.perf_counter() - start
        score = site_predictability(
            h_new[feats].assign(site=Xn["site"]), "site", feats,
            covariates=covs, n_permutations=20,
        )
        low, high = score.null_interval
        print(
            f"{label:44s} {r2_score(yn, pred):7.3f} {'':>7s} "
            f"{mean_absolute_error(yn, pred):6.2f} {float(score):8.3f} "
            f"[{low:.3f},{high:.3f}] {seconds:7.1f}",
            flush=True,
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="synthetic, seconds")
    parser.add_argument("--smooth", action="store_true", help="+ spline options")
    parser.add_argument("--decompose", action="store_true",
                        help="+ estimate_prior_cov with each part undone")
    parser.add_argument("--transfer", action="store_true",
                        help="fit on FCON1000, transform the OpenNeuro sites")
    parser.add_argument("--data", type=Path, default=DATA, help="pcn_fcon1000.csv")
    parser.add_argument(
        "--options", nargs="+", default=None,
        help="only these rows (their labels); the raw features always run first",
    )
    args = parser.parse_args(argv)

    from sklearn.metrics import mean_absolute_error, r2_score

    from sklearn_medprep import site_predictability
    from sklearn_medprep.model_selection import LeaveOneSiteOut

    warnings.simplefilter("ignore")  # the new-site warnings of LeaveOneSiteOut
    chosen = options(args.smooth, args.decompose)
    if args.options is not None:
        unknown = sorted(set(args.options) - set(chosen))
        if unknown:
            parser.error(f"unknown rows {unknown}; rows: {list(chosen)}")
        chosen = {k: v for k, v in chosen.items()
                  if k == "raw features" or k in args.options}
    if args.transfer and not args.quick:
        transfer(chosen, args.data)
        return 0
    loaded = load_table(args)
    if loaded is None:
        return 0
    X, y, feats, name = loaded
    n_sites = X["site"].nunique()
    print(
        f"{name}: {len(X)} subjects, {len(feats)} features, {n_sites} sites; "
        f"LeaveOneSiteOut ({n_sites} folds), age prediction by ridge; site "
        f"predictability of the pooled held-out rows, chance {1 / n_sites:.3f}, "
        "features adjusted for age and sex"
    )
    covs = pd.DataFrame({"age": y, "sex": X["sex"]}, index=X.index)
    header = (
        f"{'new site':44s} {'R2':>7s} {'dR2':>7s} {'MAE':>6s} "
        f"{'site acc':>8s} {'perm. 95%':>13s} {'time s':>7s}"
    )
    print(header)
    print("-" * len(header))
    raw_r2 = None
    for label, harmonizer in chosen.items():
        start = time.perf_counter()
        pred, tests = evaluate(X, y, feats, LeaveOneSiteOut(), harmonizer=harmonizer)
        seconds = time.perf_counter() - start
        r2 = r2_score(y, pred)
        raw_r2 = r2 if raw_r2 is None else raw_r2
        table = tests[feats].assign(site=X["site"])
        score = site_predictability(
            table, "site", feats, covariates=covs, n_permutations=20
        )
        low, high = score.null_interval
        print(
            f"{label:44s} {r2:7.3f} {r2 - raw_r2:+7.3f} "
            f"{mean_absolute_error(y, pred):6.2f} {float(score):8.3f} "
            f"[{low:.3f},{high:.3f}] {seconds:7.1f}",
            flush=True,
        )
    print(
        "R2, MAE: out-of-fold age predictions pooled over the folds; dR2: minus "
        "the raw features'; site acc: cross-validated balanced accuracy of a "
        "linear site classifier within the pooled held-out rows (the interval: "
        "the same with the site labels permuted); time: the LOSO loop."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
