"""Benchmark RadiomicsExtractor against PyRadiomics, measured in the same run.

(0) per image: RadiomicsExtractor (no diagnostics, exact crop) vs PyRadiomics'
    default ``RadiomicsFeatureExtractor().execute(image_path, mask_path)`` on
    breast1, brain1 and lung1 (../shared/data/pyradiomics), features checked identical;
    the runs alternate round by round, ITK and BLAS pinned to one thread; printed
    as ours/PyRadiomics time;
(f) filtered image types, per image: ours / PyRadiomics time on brain1 and lung1
    for the 665-feature (Original, LoG 1/3 mm, Square family) and 1502-feature
    (all image types but LBP) settings, best of 5 runs of each, the two
    alternating, max rel diff over every feature; each image type is extracted
    on the region its filter needs (exact crop);
(a) throughput: RadiomicsExtractor(n_jobs=2) vs a plain serial PyRadiomics loop
    over the same images (wall and CPU seconds, workers included);
(b) GridSearchCV, 5 folds x 4 candidates, over a radiomics Pipeline of 20
    images with ``memory``: number of extractions and wall time vs no cache.

Usage: python benchmarks/bench_radiomics.py [--quick] [--filtered-only]
       [--per-image-only]
"""

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

# measure the checkout this script belongs to, not an installed copy
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import psutil  # noqa: E402
import radiomics  # noqa: E402
import SimpleITK as sitk  # noqa: E402
from radiomics.featureextractor import RadiomicsFeatureExtractor  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV, StratifiedKFold  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import sklearn_medprep  # noqa: E402
from sklearn_medprep import RadiomicsExtractor  # noqa: E402
from sklearn_medprep.datasets import make_multisite_cohort  # noqa: E402
from sklearn_medprep.radiomics._worker import count_extractions  # noqa: E402

# ../shared/data next to the repository; MEDPREP_SHARED_DATA overrides it
SHARED = Path(
    os.environ.get("MEDPREP_SHARED_DATA")
    or Path(__file__).resolve().parents[2] / "shared" / "data"
) / "pyradiomics"
radiomics.setVerbosity(logging.ERROR)


def cpu_seconds():
    """CPU time of this process and all its live or finished children."""
    me = psutil.Process()
    total = sum(me.cpu_times()[:4])
    for child in me.children(recursive=True):
        try:
            times = child.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def best_of(repeats, func, *args):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = func(*args)
        times.append(time.perf_counter() - start)
    return min(times), result


def per_image(repeats):
    # threads pinned: ITK's and the BLAS/OpenMP pools, one thread each
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        with threadpool_limits(limits=1):
            _per_image(repeats)
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)


def _per_image(repeats):
    print("(0) per image, default settings: PyRadiomics execute vs RadiomicsExtractor "
          f"(best of {repeats} in wall and in CPU time of this process, the three "
          "alternating round by round; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    for case in ("breast1", "brain1", "lung1"):
        image = str(SHARED / f"{case}_image.nrrd")
        mask = str(SHARED / f"{case}_label.nrrd")
        extractor = RadiomicsFeatureExtractor()
        off = RadiomicsFeatureExtractor(additionalInfo=False)
        table = pd.DataFrame({"image": [image], "mask": [mask]}, index=[case])
        ours = RadiomicsExtractor().fit(table)
        t_ref = t_off = t_ours = float("inf")
        cpu_ref, cpu_ours = [], []  # CPU seconds of each round (one thread)
        for _ in range(repeats):
            cpu = time.process_time()
            elapsed, ref = best_of(1, extractor.execute, image, mask)
            t_ref = min(t_ref, elapsed)
            cpu_ref.append(time.process_time() - cpu)
            elapsed, _ = best_of(1, off.execute, image, mask)
            t_off = min(t_off, elapsed)
            cpu = time.process_time()
            elapsed, out = best_of(1, ours.transform, table)
            t_ours = min(t_ours, elapsed)
            cpu_ours.append(time.process_time() - cpu)
        ref = {k: float(v) for k, v in ref.items() if not k.startswith("diagnostics")}
        got = out.loc[case, list(ref)].to_numpy(float)
        rel = np.max(np.abs(got - np.array(list(ref.values())))
                     / np.maximum(np.abs(list(ref.values())), 1e-300))
        print(f"  {case:8s} PyRadiomics {t_ref:6.3f}s  (additionalInfo off "
              f"{t_off:6.3f}s)  ours {t_ours:6.3f}s  ours/PyRadiomics "
              f"{t_ours / t_ref:5.3f} (speed-up x{t_ref / t_ours:5.2f}; "
              f"x{t_off / t_ours:4.2f} vs additionalInfo off)  "
              f"max rel diff {rel:.1e} over {len(ref)} features")
        rounds = [o / r for o, r in zip(cpu_ours, cpu_ref)]
        best = min(cpu_ours) / min(cpu_ref)
        print(f"  {'':8s} CPU time: PyRadiomics {min(cpu_ref):6.3f}s  ours "
              f"{min(cpu_ours):6.3f}s  ours/PyRadiomics {best:5.3f}"
              f" (best of each; per round {min(rounds):5.3f}-{max(rounds):5.3f}, "
              f"median {float(np.median(rounds)):5.3f})")


_SQUARE_FAMILY = {"Square": {}, "SquareRoot": {}, "Logarithm": {}, "Exponential": {}}
SETTINGS_665 = {"imageType": {"Original": {}, "LoG": {"sigma": [1.0, 3.0]},
                              **_SQUARE_FAMILY}}
SETTINGS_1502 = {"imageType": {"Original": {}, "LoG": {"sigma": [1.0, 3.0]},
                               "Wavelet": {}, **_SQUARE_FAMILY, "Gradient": {}}}


def filtered(cases, repeats):
    package = Path(sklearn_medprep.__file__).parent
    print(f"(f) filtered image types per image ({package}): ours / PyRadiomics time "
          f"(additionalInfo off), best of {repeats}, the two alternating; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for case in cases:
        image = str(SHARED / f"{case}_image.nrrd")
        mask = str(SHARED / f"{case}_label.nrrd")
        table = pd.DataFrame({"image": [image], "mask": [mask]}, index=[case])
        for settings in (SETTINGS_665, SETTINGS_1502):
            reference = RadiomicsFeatureExtractor(settings, additionalInfo=False)
            ours = RadiomicsExtractor(settings=settings).fit(table)
            # alternating runs see the same load (the machine is shared); CPU
            # seconds of the process, every thread included
            t_ref = t_ours = c_ref = c_ours = float("inf")
            for _ in range(repeats):
                cpu = time.process_time()
                elapsed, ref = best_of(1, reference.execute, image, mask)
                t_ref = min(t_ref, elapsed)
                c_ref = min(c_ref, time.process_time() - cpu)
                cpu = time.process_time()
                elapsed, out = best_of(1, ours.transform, table)
                t_ours = min(t_ours, elapsed)
                c_ours = min(c_ours, time.process_time() - cpu)
            ref = {k: float(v) for k, v in ref.items()}
            assert list(out.columns[: len(ref)]) == list(ref)
            got = out.loc[case, list(ref)].to_numpy(float)
            want = np.array(list(ref.values()))
            rel = np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-300))
            print(f"  {case:7s} {len(ref):5d} features: PyRadiomics {t_ref:6.2f}s  "
                  f"ours {t_ours:6.2f}s  ours/PyRadiomics {t_ours / t_ref:5.2f}  "
                  f"(CPU {c_ours / c_ref:4.2f})  max rel diff {rel:.1e}")


FILTERS = {"imageType": {"Original": {}, "LoG": {"sigma": [1.0, 3.0]},
                         "Wavelet": {}}}


def throughput(cases, settings=None, what="default settings"):
    table = pd.DataFrame(
        {"image": [str(SHARED / f"{c}_image.nrrd") for c in cases],
         "mask": [str(SHARED / f"{c}_label.nrrd") for c in cases]},
        index=[f"{c}-{i}" for i, c in enumerate(cases)],
    )
    print(f"(a) throughput over {len(table)} images ({what})")
    ours = RadiomicsExtractor(n_jobs=2, settings=settings).fit(table.iloc[:1])
    ours.transform(table.iloc[:2])  # start the two workers

    def loop(extractor):
        return [extractor.execute(i, m) for i, m in zip(table["image"], table["mask"])]

    params = [settings] if settings else []  # none: PyRadiomics' defaults
    rows = []
    for name, func in (
        ("PyRadiomics serial loop (default)",
         lambda: loop(RadiomicsFeatureExtractor(*params))),
        ("PyRadiomics serial loop (additionalInfo off)",
         lambda: loop(RadiomicsFeatureExtractor(*params, additionalInfo=False))),
        ("RadiomicsExtractor n_jobs=1",
         lambda: RadiomicsExtractor(n_jobs=1, settings=settings)
         .fit(table.iloc[:1]).transform(table)),
        ("RadiomicsExtractor n_jobs=2", lambda: ours.transform(table)),
    ):
        cpu0, start = cpu_seconds(), time.perf_counter()
        func()
        rows.append((name, time.perf_counter() - start, cpu_seconds() - cpu0))
    base = rows[0][1]
    for name, wall, cpu in rows:
        print(f"  {name:45s} wall {wall:6.2f}s  cpu {cpu:6.2f}s  "
              f"throughput x{base / wall:5.2f}")
    print(f"  n_jobs=2 vs n_jobs=1 (same code): x{rows[2][1] / rows[3][1]:4.2f}; "
          "n_jobs=2 vs serial loop, additionalInfo off: "
          f"x{rows[1][1] / rows[3][1]:4.2f}")


def grid_search(quick):
    n = 20
    shape = (24, 26, 22) if quick else (40, 44, 36)
    with tempfile.TemporaryDirectory() as folder:
        table = make_multisite_cohort(n, 2, shape=shape, path=folder, random_state=0)
        y = table["y"].to_numpy()
        settings = {"featureClass": {"firstorder": [], "glcm": [], "glrlm": [],
                                     "shape": []}}
        cv = StratifiedKFold(5, shuffle=True, random_state=0)
        grid = {"logisticregression__C": [0.01, 0.1, 1.0, 10.0]}
        print(f"(b) GridSearchCV 5 folds x 4 candidates (+ refit), {n} images "
              f"{shape}, label 2")
        results = {}
        for name, memory in (("no cache", None), ("memory", Path(folder) / "cache")):
            pipe = make_pipeline(
                RadiomicsExtractor(label=2, settings=settings, passthrough=[],
                                   memory=memory),
                StandardScaler(), LogisticRegression(max_iter=1000),
            )
            start = time.perf_counter()
            search = GridSearchCV(pipe, grid, cv=cv).fit(table, y)
            results[name] = (time.perf_counter() - start, search)
        count = count_extractions(Path(folder) / "cache")
        same = np.array_equal(results["no cache"][1].cv_results_["mean_test_score"],
                              results["memory"][1].cv_results_["mean_test_score"])
        print(f"  extractions with memory: {count} (goal {n}); without cache every "
              f"fit and predict extracts: 5 x 4 x 2 + 1 = 41 passes")
        print(f"  wall: no cache {results['no cache'][0]:6.2f}s, memory "
              f"{results['memory'][0]:6.2f}s, speed-up "
              f"x{results['no cache'][0] / results['memory'][0]:5.2f}; "
              f"identical scores: {same}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--per-image-only", action="store_true",
                        help="only (0), default settings per image")
    parser.add_argument("--filtered-only", action="store_true",
                        help="only (f), the filtered image types")
    args = parser.parse_args()
    if args.per_image_only:
        if SHARED.is_dir():
            per_image(1 if args.quick else 7)
        return
    if args.filtered_only:
        if SHARED.is_dir():
            filtered(["brain1", "lung1"], 1 if args.quick else 5)
        return
    if SHARED.is_dir():
        per_image(1 if args.quick else 3)
        filtered(["brain1"] if args.quick else ["brain1", "lung1"],
                 1 if args.quick else 5)
        if args.quick:
            throughput(["breast1", "brain1", "brain2", "lung2"])
        else:
            throughput(["breast1", "brain1", "brain2", "lung1", "lung2"] * 2)
            throughput(["brain1", "brain2", "breast1"] * 2, FILTERS,
                       "Original + LoG(2 sigmas) + Wavelet: compute-bound, no crop")
    else:
        print(f"{SHARED} absent: skipping (0) and (a)")
    grid_search(args.quick)


if __name__ == "__main__":
    main()
