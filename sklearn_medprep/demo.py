"""The main job, end to end: ``make demo`` (``python -m sklearn_medprep.demo``).

On a synthetic two-hospital cohort whose diagnosis is partly confounded with the
hospital, the demo

1. writes the cohort (NIfTI volumes + lesion masks) and its subject table;
2. builds ``TorchIOPreprocessor -> RadiomicsExtractor (cached) ->
   ComBatHarmonizer -> StandardScaler -> LogisticRegression``, tuned with
   ``GridSearchCV`` under ``SiteStratifiedKFold``;
3. scores it with nested, leak-free cross-validation (ComBat protects the
   diagnosis in ``fit``, never needs it in ``transform``), next to the same
   without protecting the diagnosis, without harmonization, the common mistake
   (ComBat fitted on the whole cohort with the diagnosis as a covariate, before
   cross-validation) and the same cohort generated without site effects (the
   ceiling), so that each gap in the printout has one cause;
4. audits the recommended pipeline and the common mistake for leaks
   (``audit_leakage``: target proxies, subject overlap, transductive steps,
   whole-cohort preparation, the site shortcut) and prints what it found;
5. prints the site-effect report before/after harmonization, adjusted for
   the diagnosis, and writes the QC figure, adjusted as the report;
6. persists the fitted pipeline with joblib, reloads it and predicts new
   subjects, checking the predictions are identical.
"""

import argparse
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ._demo_search import _FoldFits, _roc_auc

RADIOMICS_SETTINGS = {
    "setting": {"binCount": 32, "label": 1},
    "imageType": {"Original": {}},
    "featureClass": {
        "firstorder": [],
        "glcm": [],
        "glrlm": [],
        "glszm": [],
        "shape": [],
    },
}


class _Stage:
    """Print a numbered stage with its duration."""

    def __init__(self):
        self.n = 0

    def __call__(self, title):
        self.n += 1
        self.title = title
        print(f"\n[{self.n}] {title}", flush=True)
        self.start = time.perf_counter()
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            print(f"    done in {time.perf_counter() - self.start:.1f} s", flush=True)


def _pipelines(cache, n_jobs, verbose):
    """Return (feature pipeline, model on features, full pipeline).

    The feature pipeline extracts with ``n_jobs`` workers and a progress bar; in
    the full pipeline, which the cross-validation refits many times, extraction
    is served from the cache, and parallelism goes to the search instead. The
    full pipeline is ``prepare`` (preprocessing, radiomics, ComBat, scaler)
    then ``classify``: the search tunes the classifier only, so each fold's
    ``prepare`` is fitted once for all candidates (see :func:`_search`).
    """
    import torchio as tio
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from sklearn_medprep import (
        ComBatHarmonizer,
        RadiomicsExtractor,
        TorchIOPreprocessor,
    )

    def feature_steps(n_jobs, verbose):
        return [
            # sites differ in voxel spacing: resample everything to 1 mm isotropic
            (
                "preprocess",
                TorchIOPreprocessor(tio.Resample(1.0, image_interpolation="linear")),
            ),
            (
                "radiomics",
                RadiomicsExtractor(
                    settings=RADIOMICS_SETTINGS,
                    passthrough=["site", "age", "sex"],
                    memory=cache,
                    n_jobs=n_jobs,
                    verbose=verbose,
                ),
            ),
        ]

    model_steps = [
        ("scale", StandardScaler()),
        ("classify", LogisticRegression()),  # scaled: converges in few steps
    ]
    features = Pipeline(feature_steps(n_jobs, verbose))
    model = Pipeline(model_steps)
    prepare = Pipeline(
        [
            *feature_steps(1, False),
            ("combat", ComBatHarmonizer(site="site", covariates=["age", "sex"])),
            *model_steps[:-1],
        ]
    )
    full = Pipeline([("prepare", prepare), model_steps[-1]])
    return features, model, full


def _search(pipeline, n_jobs, random_state):
    """GridSearchCV over the classifier's ``C``, site-stratified inner folds.

    In a pipeline of two steps (``prepare``, ``classify``), ``prepare`` is
    fitted once per fold and shared by the candidates (:class:`_FoldFits`, a
    new one per search: see :func:`_outer_scores`), which also prepare each
    fold's held-out rows once (:func:`_roc_auc`); the scores are those of
    separate fits.
    """
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV

    from sklearn_medprep.model_selection import SiteStratifiedKFold

    pipeline, scoring = clone(pipeline), "roc_auc"
    if len(pipeline.steps) == 2:  # one step before the classifier: no chain
        pipeline.set_params(memory=_FoldFits())
        scoring = _roc_auc
    return GridSearchCV(
        pipeline,
        {"classify__C": [0.01, 0.1, 1.0]},
        cv=SiteStratifiedKFold(3, site="site", shuffle=True, random_state=random_state),
        scoring=scoring,
        n_jobs=n_jobs,
    )


def _outer_scores(search, X, y, cv, name, verbose=True):
    """Cross-validate ``search`` (nested CV), printing each outer fold."""
    from sklearn.base import clone
    from sklearn.metrics import roc_auc_score

    scores = []
    for k, (train, test) in enumerate(cv.split(X, y), start=1):
        fitted = clone(search)
        if isinstance(fitted.estimator.memory, _FoldFits):  # a new one per search
            fitted.set_params(estimator__memory=_FoldFits())
        fitted.fit(X.iloc[train], y.iloc[train])
        proba = fitted.predict_proba(X.iloc[test])[:, 1]
        scores.append(roc_auc_score(y.iloc[test], proba))
        if verbose:
            print(f"    {name} fold {k}/{cv.get_n_splits()}: ROC AUC {scores[-1]:.3f}")
    return np.array(scores)


def _print_plan(out, n_subjects, n_new):
    """Say what will run, how long it takes and where every output goes."""
    print(
        f"sklearn-medprep demo: {n_subjects + n_new} synthetic subjects "
        f"({n_subjects} for training and cross-validation, {n_new} held back as "
        "new patients).\n"
        "Expected run time: about 2 minutes on 2 CPU cores at the default size "
        "(it grows with --n-subjects); every stage prints its own duration.\n"
        f"All outputs go to one folder: {out}/ (the cohort's images and table, "
        "the radiomics cache, the cohort audit, the QC figure and report, the "
        "fitted pipeline).",
        flush=True,
    )


def _audit_cohort(train, out):
    """Audit the training cohort's metadata before any model: print, save, plot.

    Returns the :class:`~sklearn_medprep.CohortReport`.
    """
    from sklearn_medprep import cohort_report

    report = cohort_report(
        train, site="site", target="y", covariates=["age", "sex"], protected=["sex"]
    )
    print("    cohort audit (metadata only, before any model):")
    for finding in report.findings or [str(report).splitlines()[-1][2:]]:
        print(
            textwrap.fill(
                str(finding), 86, initial_indent="    - ", subsequent_indent="      "
            )
        )
    site_only = report.shortcuts.loc["site"]
    print(
        f"    -> the label alone from the hospital: {site_only['metric']} "
        f"{site_only['score']:.2f} (chance {site_only['chance']:.2f}); a model "
        "must beat this to show it learned more than the hospital."
    )
    (out / "cohort_audit.txt").write_text(str(report) + "\n", encoding="utf-8")
    fig = report.plot()
    fig.savefig(out / "cohort_audit.png", dpi=100)
    print(f"    audit written to {out / 'cohort_audit.txt'} and cohort_audit.png")
    return report


def _explain_site_predictability(before, after):
    """Print the site-predictability scores with chance, interval and verdict."""
    print(
        "    (balanced accuracy of a classifier that guesses the hospital from the\n"
        "    features, cross-validated; after ComBat it is scored only on rows the\n"
        "    ComBat of each outer fold was not fitted on; the interval is that of\n"
        "    the same score with the hospitals shuffled.)"
    )
    print(f"    before: {before.summary()}")
    print(f"    after:  {after.summary()}")
    if after.verdict is None:
        return
    if after.verdict.startswith("below"):
        print(
            f"    {after:.2f} after is below the permutation interval: rows are\n"
            "    systematically sent to the wrong hospital. That is over-correction\n"
            "    of the scored rows, not success."
        )
    elif after.verdict == "at chance":
        print(f"    {after:.2f} after is within the interval: no site signal left.")
    else:
        print(
            f"    {after:.2f} after is above the interval: some site signal remains "
            "(see the site-effect report and the QC figure)."
        )


def _site_effect_report(before, after, out):
    """Print and save the site effect per feature, adjusted for the diagnosis.

    ``before`` holds the features, ``site`` and ``diagnosis``; ``after`` the
    same rows after ComBat. Returns the :func:`~sklearn_medprep.site_effect_report`.
    """
    from sklearn_medprep import site_effect_report

    report = site_effect_report(before, after, "site", covariates=["diagnosis"])
    report.to_csv(out / "site_effect_report.csv")
    print(report.sort_values("F_before", ascending=False).head(8).to_string())
    n_before = int((report["p_before"] < 0.05).sum())
    n_after = int((report["p_after"] < 0.05).sum())
    print(
        f"    features with a site effect (ANOVA p < 0.05) adjusted for the "
        f"diagnosis: {n_before} before, {n_after} after, of {len(report)}"
    )
    return report


def _qc_figure(before, after, predictability, out):
    """Draw and save the QC figure, its tests adjusted as the printed report.

    Returns the figure (also written to ``out / "qc_harmonization.png"``).
    """
    from sklearn_medprep import plot_harmonization

    fig = plot_harmonization(
        before,
        after,
        "site",
        covariates=["diagnosis"],  # as _site_effect_report: the same counts
        predictability=predictability,
    )
    fig.savefig(out / "qc_harmonization.png", dpi=100)
    print(f"    QC plots written to {out / 'qc_harmonization.png'}")
    return fig


def _on_features(model, protect_target):
    """The model on extracted features: ComBat first (or the metadata dropped)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    from sklearn_medprep import ComBatHarmonizer

    if protect_target is None:  # no harmonization: the features as extracted
        meta = ColumnTransformer(
            [("meta", "drop", ["site", "age", "sex"])], remainder="passthrough"
        )
        return Pipeline([("drop_meta", meta), *model.steps])
    combat = ComBatHarmonizer(
        site="site", covariates=["age", "sex"], protect_target=protect_target
    )
    return Pipeline([("combat", combat), *model.steps])


def _audit_pipelines(model, raw, y, harmonized_all, cv):
    """Audit the recommended pipeline and the common mistake for leaks; print.

    ``raw`` are the extracted features with the site, age and sex;
    ``harmonized_all`` the features harmonized on the whole cohort before the
    cross-validation (the common mistake). The model on them sees the same
    features as the one scored above (the metadata dropped). Returns the two
    :class:`~sklearn_medprep.LeakageAudit`.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    from sklearn_medprep import audit_leakage

    meta = ["site", "age", "sex"]
    drop_meta = ColumnTransformer([("meta", "drop", meta)], remainder="passthrough")
    candidates = {
        "recommended (ComBat inside CV, diagnosis protected)": (
            _on_features(model, "auto"),
            raw,
        ),
        "common mistake (ComBat on the whole cohort, then CV)": (
            Pipeline([("drop_meta", drop_meta), *model.steps]),
            harmonized_all.assign(**{c: raw[c] for c in meta}),
        ),
    }
    audits = {}
    for label, (pipeline, X) in candidates.items():
        audit = audit_leakage(pipeline, X, y, cv=cv, covariates=["age", "sex"])
        audits[label] = audit
        s = audit.scores
        n = len(audit.findings)
        found = {0: "no finding", 1: "1 finding"}.get(n, f"{n} findings")
        print(
            f"    {label}: balanced accuracy {s['pipeline']:.2f} (site alone "
            f"{s['site']:.2f}, chance {s['chance']:.2f}); {found}"
        )
        if not audit.findings and label.startswith("common mistake"):
            per_site = len(X) / X["site"].nunique()
            print(
                textwrap.fill(
                    f"not detected at this size ({per_site:.0f} subjects per "
                    "site): the whole-cohort check needs more subjects to "
                    "tell shrunk site means from chance; a clean audit is not "
                    "proof of a leak-free pipeline",
                    86,
                    initial_indent="      ",
                    subsequent_indent="      ",
                )
            )
        for finding in audit.findings:
            print(
                textwrap.fill(
                    f"{finding.kind}: {finding.message}",
                    86,
                    initial_indent="      - ",
                    subsequent_indent="        ",
                )
            )
    return audits


def _print_scores(rows):
    print("\n    Cross-validated ROC AUC (5 site-stratified outer folds, nested)")
    for label, scores in rows.items():
        print(f"    {label:<66}{scores.mean():.3f} +/- {scores.std():.3f}")
    rec = next(v for k, v in rows.items() if k.endswith(": recommended")).mean()
    gaps = [
        ("not protected", "ComBat removes the diagnosis with the hospital"),
        ("as covariate", "leakage, each test subject harmonized with its own label"),
        ("no harmonization", "the hospital shortcut, prevalence differs by hospital"),
        ("ceiling", "the site effects that harmonization cannot undo"),
    ]
    names = {"as covariate": "common mistake"}
    gaps = [
        (key, f"{names.get(key, key)}: {why}") for key, why in gaps
    ]
    print("    Each gap to the recommended pipeline has one cause:")
    for key, why in gaps:
        label = next(k for k in rows if key in k)
        print(f"      {rows[label].mean() - rec:+.3f}  {why}")


def main(argv=None):
    """Run the demo.

    Parameters
    ----------
    argv : list of str or None
        Command-line arguments (``sys.argv[1:]`` when None).

    Returns
    -------
    int
        Exit status (0 on success).
    """
    parser = argparse.ArgumentParser(
        prog="python -m sklearn_medprep.demo",
        description=(
            "The end-to-end demo (what `make demo` runs): a synthetic two-hospital "
            "MR cohort, TorchIO preprocessing, PyRadiomics features, ComBat and a "
            "leak-free nested cross-validation, QC figures and a saved pipeline."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", default="demo_output", help="output folder")
    parser.add_argument("--n-subjects", type=int, default=120,
                        help="subjects in the training cohort")
    parser.add_argument("--n-new", type=int, default=12,
                        help="new subjects to predict with the saved pipeline")
    parser.add_argument("--n-jobs", type=int, default=2,
                        help="worker processes for the radiomics extraction")
    parser.add_argument("--random-state", type=int, default=0,
                        help="seed of the cohort and of the splits")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    import joblib

    try:
        import matplotlib
    except ImportError:  # the `plot` extra is optional: the demo runs without it
        matplotlib = None
    else:
        matplotlib.use("Agg")
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    from sklearn_medprep import (
        ComBatHarmonizer,
        site_predictability,
        write_manifest,
    )
    from sklearn_medprep.datasets import make_multisite_cohort
    from sklearn_medprep.model_selection import SiteStratifiedKFold

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stage = _Stage()
    started = time.perf_counter()
    _print_plan(out, args.n_subjects, args.n_new)

    with stage("Synthetic two-hospital cohort (diagnosis partly confounded with site)"):
        n_total = args.n_subjects + args.n_new
        cohort = make_multisite_cohort(
            n_total,
            2,
            path=out / "cohort",
            random_state=args.random_state,
            confounding=0.6,
            label_effect=0.15,
        )
        # paths relative to the CSV's folder: read_manifest and the command
        # line (sklearn-medprep extract cohort.csv ...) read it back
        write_manifest(cohort, out / "cohort.csv", image="image", mask="mask")
        rng = np.random.default_rng(args.random_state)
        new_rows = np.sort(rng.choice(n_total, args.n_new, replace=False))
        new = cohort.iloc[new_rows]
        train = cohort.drop(index=new.index)
        y = train["y"]
        with pd.option_context("display.width", 120, "display.max_colwidth", 36):
            print(train.head(4).to_string())
        print("    subjects per hospital and diagnosis (training cohort):")
        print(pd.crosstab(train["site"], y).to_string().replace("\n", "\n    "))
        _audit_cohort(train, out)

    features, model, full = _pipelines(out / "cache", args.n_jobs, not args.quiet)
    outer = SiteStratifiedKFold(5, site="site", shuffle=True, random_state=1)

    with stage("Radiomic features (extracted once, cached for every fold)"):
        raw = features.fit_transform(train)
        print(f"    {raw.shape[1] - 3} features x {len(raw)} subjects")

    rows = {}
    with stage("Leak-free score: nested CV, everything fitted inside each fold"):
        # ComBat receives the training labels in fit (protect_target="auto"):
        # the diagnosis is protected there, and transform never needs it
        search = _search(full, args.n_jobs, args.random_state)
        rows["leak-free (ComBat inside CV), diagnosis protected: recommended"] = (
            _outer_scores(search, train, y, outer, "leak-free")
        )

    with stage("Same folds on the extracted features: one change at a time"):
        for label, protect in (
            ("leak-free (ComBat inside CV), diagnosis not protected", "none"),
            ("no harmonization", None),
        ):
            search_f = _search(
                _on_features(model, protect), args.n_jobs, args.random_state
            )
            rows[label] = _outer_scores(search_f, raw, y, outer, label, False)
        # the common mistake: ComBat on the whole cohort, the diagnosis as a
        # covariate (each subject harmonized with its own label), then CV
        harmonized_all = ComBatHarmonizer(
            site="site", covariates=["age", "sex", "y"]
        ).fit_transform(raw.assign(y=y))
        # the site column stays in the table for the site-aware splitters only
        drop_site = ColumnTransformer(
            [("site", "drop", ["site"])], remainder="passthrough"
        )
        leaky_model = Pipeline([("drop_site", drop_site), *model.steps])
        search_leaky = _search(leaky_model, args.n_jobs, args.random_state)
        rows["leaky (ComBat before CV), diagnosis as covariate"] = _outer_scores(
            search_leaky,
            harmonized_all.assign(site=train["site"]),
            y,
            outer,
            "leaky",
            False,
        )

    with stage("Ceiling: the same cohort generated without site effects"):
        clean = make_multisite_cohort(
            n_total,
            2,
            path=out / "cohort_no_site_effects",
            random_state=args.random_state,
            confounding=0.6,
            label_effect=0.15,
            site_effects=False,
        ).drop(index=new.index)
        raw_clean = features.fit_transform(clean)
        search_c = _search(
            _on_features(model, "auto"), args.n_jobs, args.random_state
        )
        rows["ceiling: same subjects, no site effects, recommended"] = (
            _outer_scores(search_c, raw_clean, y, outer, "ceiling", False)
        )
    _print_scores(rows)

    with stage("Leakage audit: the recommended pipeline and the common mistake"):
        _audit_pipelines(model, raw, y, harmonized_all, outer)

    with stage("Fit the tuned pipeline on the whole training cohort"):
        search = _search(full, args.n_jobs, args.random_state).fit(train, y)
        best = search.best_estimator_.set_params(memory=None)  # fits not kept
        print(f"    best C = {search.best_params_['classify__C']}")

    with stage("Site-effect report: radiomic features before/after ComBat"):
        after = best["prepare"][:-1].transform(train)
        # ComBat keeps the diagnosis (protected), whose prevalence differs by
        # hospital: the site effect is reported adjusted for it
        before = raw[after.columns.tolist() + ["site"]].assign(diagnosis=y)
        _site_effect_report(before, after, out)
        # adjusted for the protected diagnosis (kept out of ComBat's input);
        # after: ComBat refitted per outer fold, held-out rows scored
        diagnosis = before[["diagnosis"]]
        acc_before = site_predictability(
            before.drop(columns="diagnosis"), "site", covariates=diagnosis
        )
        acc_after = site_predictability(
            raw,
            "site",
            after.columns.tolist(),
            harmonizer=best["prepare"].named_steps["combat"],
            y=y,
            covariates=diagnosis,
        )
        _explain_site_predictability(acc_before, acc_after)
        if matplotlib is None:
            print(
                "    QC plots skipped: matplotlib is not installed "
                '(pip install "sklearn-medprep[plot]")'
            )
        else:
            _qc_figure(before, after, {"before": acc_before, "after": acc_after}, out)

    with stage("Persist, reload, predict new subjects"):
        model_file = out / "pipeline.joblib"
        joblib.dump(best, model_file)
        reloaded = joblib.load(model_file)
        fitted_proba = best.predict_proba(new)[:, 1]
        reloaded_proba = reloaded.predict_proba(new)[:, 1]
        if not np.array_equal(fitted_proba, reloaded_proba):
            raise RuntimeError("the reloaded pipeline predicts differently")
        print(
            f"    {len(new)} new patients, never seen in fit: the reloaded pipeline's "
            "probability of the diagnosis,\n    next to the true label (which a "
            "clinic would not have; shown here to check the predictions)"
        )
        print(
            pd.DataFrame(
                {"site": new["site"], "y": new["y"], "P(y=1)": reloaded_proba.round(3)}
            ).to_string()
        )
        if new["y"].nunique() == 2:
            from sklearn.metrics import roc_auc_score

            print(
                f"    ROC AUC on these {len(new)} new patients: "
                f"{roc_auc_score(new['y'], reloaded_proba):.2f} (a small sample: "
                "the nested cross-validated score above is the estimate to trust)"
            )
        print(f"    saved to {model_file}; reloaded predictions identical: True")

    print(
        f"\nDemo finished in {time.perf_counter() - started:.0f} s; outputs in {out}/"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
