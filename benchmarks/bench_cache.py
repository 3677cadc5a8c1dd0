"""Benchmark the radiomics cache: what a hit costs against an extraction.

(a) hit / extraction: ``RadiomicsExtractor(memory=...)`` served entirely from a
    warm cache vs ``RadiomicsExtractor()`` extracting, on the same table of file
    paths (PyRadiomics' brain1, breast1, lung1 from ../shared/data/pyradiomics,
    default settings); the hit is measured twice: in the process that filled
    the cache (file keys remembered in memory) and as a fresh process would see
    it (file keys read from the cache folder's index);
(b) GridSearchCV, 5 folds x 4 candidates + refit, over RadiomicsExtractor ->
    StandardScaler -> Ridge on a DataFrame of file paths (the three cases, each
    in 4 intensity variants written as NRRD: 12 rows), cold cache vs no cache;
(c) the demo's nested cross-validation (``sklearn_medprep.demo``: 5 outer
    folds x GridSearchCV of 3 folds x 3 candidates over TorchIOPreprocessor
    (Resample 1 mm) -> RadiomicsExtractor(memory) -> ComBat -> scaler ->
    logistic regression), in ``--rounds`` rounds, each on a new cache folder:
    cold (empty cache), then, alternating which goes first, warm as a fresh
    process (the process's memory of the cache cleared: file keys and entries
    read from the folder and verified again) with the demo's search and with
    the previous one (every candidate refitting the steps before the
    classifier and preparing the held-out rows again), then warm in the same
    process; the warm runs against the cold one, the time of each group of
    steps (cache-served preprocessing + radiomics, ComBat, logistic
    regression, the rest) as a share of the cold run, how many times each
    image was transformed, and whether every run gave the same outer scores.
    BLAS/OpenMP are limited to one thread, as in the demo's search workers on
    2 cores (joblib gives each of its ``n_jobs`` workers cpu_count // n_jobs
    threads): the model fits are on ~100 x 100 matrices, where more threads
    only wait for each other.

Usage: python benchmarks/bench_cache.py [--quick] [--rounds N] [--data FOLDER]
       [--demo-only]

``--demo-only`` runs (c) alone (no PyRadiomics cases needed).

``--quick`` uses a small synthetic cohort instead of the PyRadiomics cases.
"""

import argparse
import logging
import os
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

# measure the checkout this script belongs to, not an installed copy
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import radiomics  # noqa: E402
import SimpleITK as sitk  # noqa: E402
from sklearn.linear_model import Ridge  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from sklearn_medprep import RadiomicsExtractor  # noqa: E402
from sklearn_medprep.datasets import make_multisite_cohort  # noqa: E402
from sklearn_medprep.images import _subject  # noqa: E402
from sklearn_medprep.radiomics import _cache  # noqa: E402
from sklearn_medprep.utils import count_extractions  # noqa: E402

radiomics.setVerbosity(logging.ERROR)

CANDIDATES = [
    Path(__file__).resolve().parents[1] / "shared" / "data" / "pyradiomics",
    Path(__file__).resolve().parents[2] / "shared" / "data" / "pyradiomics",
    Path("/work/shared/data/pyradiomics"),
]
CASES = ("brain1", "breast1", "lung1")


def best_of(repeats, func):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def real_table(data):
    return pd.DataFrame(
        {"image": [str(data / f"{c}_image.nrrd") for c in CASES],
         "mask": [str(data / f"{c}_label.nrrd") for c in CASES]},
        index=pd.Index(list(CASES), name="case"),
    )


def variants(table, folder, n):
    """``n`` intensity variants of every row, written as NRRD files."""
    rows = []
    for case, (image, mask) in table[["image", "mask"]].iterrows():
        source = sitk.ReadImage(image)
        for k in range(n):
            out = Path(folder) / f"{case}-{k}.nrrd"
            sitk.WriteImage(sitk.Cast(source, sitk.sitkFloat32) + 10.0 * k, str(out))
            rows.append((f"{case}-{k}", str(out), mask))
    frame = pd.DataFrame(rows, columns=["id", "image", "mask"]).set_index("id")
    return frame.sample(frac=1.0, random_state=0)


def hit_cost(table, label, repeats, folder):
    print(f"(a) hit vs extraction, {len(table)} rows of file paths, default settings")
    memory = Path(folder) / "hit-cache"
    plain = RadiomicsExtractor(label=label, passthrough=[])
    t_extract = best_of(repeats, lambda: plain.fit_transform(table))
    cached = RadiomicsExtractor(label=label, passthrough=[], memory=memory)
    reference = cached.fit_transform(table)  # fills the cache
    t_hit = best_of(repeats, lambda: cached.fit_transform(table))

    def fresh():
        _cache.clear_memory()
        return cached.fit_transform(table)

    t_fresh = best_of(repeats, fresh)
    same = reference.equals(cached.fit_transform(table))
    print(f"  extraction {t_extract:7.4f}s  hit {t_hit:7.4f}s  hit/extract "
          f"{t_hit / t_extract:6.4f} (goal <= 0.05)")
    print(f"  hit as a fresh process (file keys from the folder's index) "
          f"{t_fresh:7.4f}s  hit/extract {t_fresh / t_extract:6.4f}")
    print(f"  extractions logged: {count_extractions(memory)} (goal {len(table)}); "
          f"identical output: {same}")


def grid_search(table, label, folder):
    y = np.random.default_rng(0).normal(size=len(table))
    grid = {"ridge__alpha": [0.1, 1.0, 10.0, 100.0]}
    cv = KFold(5, shuffle=True, random_state=0)
    print(f"(b) GridSearchCV 5 folds x 4 candidates + refit, {len(table)} rows of "
          "file paths, default settings")
    results = {}
    memory = Path(folder) / "grid-cache"
    for name, mem in (("no cache", None), ("memory", memory)):
        pipe = make_pipeline(
            RadiomicsExtractor(label=label, passthrough=[], memory=mem),
            StandardScaler(), Ridge(),
        )
        start = time.perf_counter()
        search = GridSearchCV(pipe, grid, cv=cv).fit(table, y)
        results[name] = (time.perf_counter() - start, search)
    same = np.array_equal(results["no cache"][1].cv_results_["mean_test_score"],
                          results["memory"][1].cv_results_["mean_test_score"])
    t_plain, t_mem = results["no cache"][0], results["memory"][0]
    print(f"  extractions with memory: {count_extractions(memory)} "
          f"(goal {len(table)})")
    print(f"  wall: no cache {t_plain:7.2f}s, cold cache {t_mem:7.2f}s, speed-up "
          f"x{t_plain / t_mem:5.2f} (goal >= 8); identical scores: {same}")


def nested_cv(folder, n_subjects, rounds):
    from collections import Counter

    from sklearn_medprep import demo
    from sklearn_medprep.model_selection import SiteStratifiedKFold

    cohort = make_multisite_cohort(n_subjects, 2, path=Path(folder) / "demo",
                                   random_state=0, confounding=0.6,
                                   label_effect=0.15)
    y = cohort["y"]
    outer = SiteStratifiedKFold(5, site="site", shuffle=True, random_state=1)
    transformed = Counter()
    original = _subject.apply_to_row

    def counting(transform, cells, *args):
        transformed[(str(cells[0]), repr(transform))] += 1
        return original(transform, cells, *args)

    _subject.apply_to_row = counting
    # time spent per group of steps: those the cache covers (preprocessing +
    # radiomics), ComBat, the classifier; the outermost call of a group counts
    from sklearn.linear_model import LogisticRegression

    from sklearn_medprep import ComBatHarmonizer, TorchIOPreprocessor

    spent = {"features": 0.0, "combat": 0.0, "classifier": 0.0}
    spent_cpu = dict(spent)  # the same in CPU time of this process
    calls = {"combat": 0, "classifier": 0}
    depth = dict.fromkeys(spent, 0)
    groups = {"features": [(TorchIOPreprocessor, "fit"),
                           (TorchIOPreprocessor, "transform"),
                           (RadiomicsExtractor, "fit"),
                           (RadiomicsExtractor, "transform"),
                           (RadiomicsExtractor, "fit_transform")],
              "combat": [(ComBatHarmonizer, "fit"), (ComBatHarmonizer, "transform"),
                         (ComBatHarmonizer, "fit_transform")],
              "classifier": [(LogisticRegression, name) for name in
                             ("fit", "predict_proba", "decision_function")]}
    originals = [(cls, name, cls.__dict__.get(name), group)
                 for group, members in groups.items() for cls, name in members]

    def timed(func, group, name):
        def inner(*args, **kwargs):
            depth[group] += 1
            start, start_cpu = time.perf_counter(), time.process_time()
            try:
                return func(*args, **kwargs)
            finally:
                depth[group] -= 1
                if depth[group] == 0:
                    spent[group] += time.perf_counter() - start
                    spent_cpu[group] += time.process_time() - start_cpu
                    if group in calls and name in ("fit", "fit_transform"):
                        calls[group] += 1
        return inner

    for cls, name, _, group in originals:
        setattr(cls, name, timed(getattr(cls, name), group, name))
    print(f"(c) demo nested CV, {n_subjects} subjects: 5 outer folds x "
          "GridSearchCV(3 folds x 3 candidates), TorchIOPreprocessor -> "
          "RadiomicsExtractor(memory) -> ComBat -> model")
    print(f"  method: {rounds} rounds, each on a new cache folder: cold (empty "
          "cache), then, alternating which goes first, warm as a fresh process "
          "with the demo's search and with the previous search (every candidate "
          "refits the steps before the classifier and prepares the held-out rows "
          "again; scoring='roc_auc'), then warm in the same process; CPU time of "
          "this process (time.process_time) and wall time, BLAS/OpenMP pinned to "
          "one thread; ratios within a round")
    summary = []
    try:
        for k in range(rounds):
            memory = Path(folder) / f"demo-cache-{k}"
            warm = [("warm", False), ("warm, previous search", True)]
            runs = [("cold", False), *(warm if k % 2 == 0 else warm[::-1]),
                    ("warm, same process", False)]
            measured = {}
            for run, previous in runs:
                if run != "warm, same process":
                    _cache.clear_memory()  # as a fresh process
                transformed.clear()
                for group in spent:
                    spent[group] = spent_cpu[group] = 0.0
                calls.update(combat=0, classifier=0)
                _, _, full = demo._pipelines(memory, 1, False)
                search = demo._search(full, 1, 0)
                if previous:
                    search.set_params(estimator__memory=None, scoring="roc_auc")
                start, start_cpu = time.perf_counter(), time.process_time()
                with (open(os.devnull, "w") as sink, redirect_stdout(sink),
                      threadpool_limits(limits=1)):
                    scores = demo._outer_scores(search, cohort, y, outer, run)
                wall = time.perf_counter() - start
                cpu = time.process_time() - start_cpu
                measured[run] = {"wall": wall, "cpu": cpu, "scores": scores,
                                 "features": spent["features"],
                                 "share": {**spent_cpu,
                                           "other": cpu - sum(spent_cpu.values())}}
                most = max(transformed.values(), default=0)
                print(f"  round {k + 1}, {run}: {wall:7.2f}s, images transformed "
                      f"{sum(transformed.values())} (distinct {len(transformed)}), "
                      f"most per (image, fitted transform): {most}; "
                      f"preprocessing + radiomics steps {spent['features']:7.2f}s; "
                      f"mean ROC AUC {scores.mean():.3f}")
                print(f"    ComBat {spent['combat']:6.2f}s ({calls['combat']} fits, "
                      f"{1000 * spent['combat'] / max(calls['combat'], 1):5.1f} ms "
                      f"per fit with its transforms); logistic regression "
                      f"{spent['classifier']:6.2f}s ({calls['classifier']} fits); "
                      f"other (scaler, search, scoring) "
                      f"{wall - sum(spent.values()):6.2f}s; CPU time {cpu:7.2f}s")
            same = all(np.array_equal(m["scores"], measured["cold"]["scores"])
                       for m in measured.values())
            print(f"  round {k + 1}: extractions logged: {count_extractions(memory)}"
                  f" for {len(cohort)} images; identical outer scores in every "
                  f"run: {same}")
            summary.append(measured)
    finally:
        _subject.apply_to_row = original
        for cls, name, func, _ in originals:
            if func is None:  # inherited: remove the wrapper
                delattr(cls, name)
            else:
                setattr(cls, name, func)

    def ratios(run, base="cold", key="cpu"):
        values = [m[run][key] / m[base][key] for m in summary]
        return values[-1], f"{min(values):6.4f}-{max(values):6.4f}"

    last = summary[-1]
    print(f"  warm / cold, whole nested CV: {ratios('warm', key='wall')[0]:6.4f} "
          f"wall (rounds {ratios('warm', key='wall')[1]}; goal <= 0.15); "
          f"preprocessing + radiomics steps only: "
          f"{last['warm']['features'] / last['cold']['features']:6.4f}")
    print(f"  in CPU time (steadier on a shared machine): warm / cold "
          f"{ratios('warm')[0]:6.4f}; warm in the same process / cold "
          f"{ratios('warm, same process')[0]:6.4f} (rounds: warm "
          f"{ratios('warm')[1]}, same process {ratios('warm, same process')[1]})")
    print(f"  warm in the same process / cold, whole nested CV: "
          f"{ratios('warm, same process', key='wall')[0]:6.4f} wall")
    print(f"  previous search, warm / the same cold run, CPU time: "
          f"{ratios('warm, previous search')[0]:6.4f} (rounds "
          f"{ratios('warm, previous search')[1]}); the demo's warm / the previous "
          f"search's warm: {ratios('warm', 'warm, previous search')[0]:6.4f} "
          f"(rounds {ratios('warm', 'warm, previous search')[1]})")
    cold = last["cold"]["cpu"]
    for run in ("warm", "warm, same process"):
        share = last[run]["share"]
        print(f"  {run} run by group, CPU time as a share of the cold run's: "
              f"cache-served steps (preprocessing + radiomics) "
              f"{share['features'] / cold:6.4f}, ComBat "
              f"{share['combat'] / cold:6.4f}, logistic regression "
              f"{share['classifier'] / cold:6.4f}, other (scaler, search, "
              f"scoring) {share['other'] / cold:6.4f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small synthetic cohort instead of PyRadiomics' cases")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds of (c), each cold then warm (default 2; "
                             "1 with --quick)")
    parser.add_argument("--data", type=Path, default=None,
                        help="folder holding brain1_image.nrrd, ...")
    parser.add_argument("--demo-only", action="store_true",
                        help="run (c), the demo's nested cross-validation, alone")
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 2)
    if args.demo_only:
        with tempfile.TemporaryDirectory() as folder:
            nested_cv(folder, 30 if args.quick else 120, rounds)
        return
    candidates = [args.data] if args.data else CANDIDATES
    data = next((c for c in candidates
                 if c is not None and (c / "brain1_image.nrrd").is_file()), None)
    with tempfile.TemporaryDirectory() as folder:
        if args.quick or data is None:
            if data is None:
                print("PyRadiomics cases absent: synthetic cohort instead")
            table = make_multisite_cohort(3, 1, shape=(24, 26, 22), path=folder,
                                          random_state=0)[["image", "mask"]]
            label, n_variants, repeats = 2, 4, 2
        else:
            table, label, n_variants, repeats = real_table(data), 1, 4, 3
        hit_cost(table, label, repeats, folder)
        grid_search(variants(table, folder, n_variants), label, folder)
        nested_cv(folder, 30 if args.quick else 120, rounds)


if __name__ == "__main__":
    main()
