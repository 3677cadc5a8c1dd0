"""Benchmark the radiomics cache: what a hit costs against an extraction.

(a) hit / extraction: ``RadiomicsExtractor(memory=...)`` served entirely from a
    warm cache vs ``RadiomicsExtractor()`` extracting, on the same table of file
    paths (PyRadiomics' brain1, breast1, lung1 from ../shared/data/pyradiomics,
    default settings); the hit is measured twice: in the process that filled
    the cache (file keys remembered in memory) and as a fresh process would see
    it (file keys read from the cache folder's index);
(b) GridSearchCV, 5 folds x 4 candidates + refit, over RadiomicsExtractor ->
    StandardScaler -> Ridge on a DataFrame of file paths (the three cases, each
    in 4 intensity variants written as NRRD: 12 rows), cold cache vs no cache.

Usage: python benchmarks/bench_cache.py [--quick] [--data FOLDER]

``--quick`` uses a small synthetic cohort instead of the PyRadiomics cases.
"""

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import radiomics
import SimpleITK as sitk
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_medprep import RadiomicsExtractor, _cache
from sklearn_medprep.datasets import make_multisite_cohort
from sklearn_medprep.utils import count_extractions

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
        _cache._FILE_KEYS.clear()
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small synthetic cohort instead of PyRadiomics' cases")
    parser.add_argument("--data", type=Path, default=None,
                        help="folder holding brain1_image.nrrd, ...")
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
