"""Cost of the target-proxy check that ComBat runs in ``fit`` (issue 20).

``check_target_proxies`` on a float table of 2000 rows x 50,000 feature columns
(plus site and sex), timed against one pass over the matrix
(``X.to_numpy() * 2.0``) and against one ``ComBatHarmonizer.fit`` with ``y``
on the same table (which includes the check). Numeric ``y`` (age) and class
labels; best of 3 (ComBat: one fit). Also printed: the proxies found, none on
random features, and a planted one found.

    python benchmarks/bench_proxy.py [--quick]
"""

import argparse
import time

import numpy as np
import pandas as pd

from sklearn_medprep import ComBatHarmonizer
from sklearn_medprep.table import check_target_proxies, find_target_proxies


def best(f, k=3):
    times = []
    for _ in range(k):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 x 2,000")
    args = parser.parse_args()
    n, p = (300, 2000) if args.quick else (2000, 50_000)
    rng = np.random.default_rng(0)
    feats = [f"f{j}" for j in range(p)]
    X = pd.DataFrame(rng.normal(size=(n, p)), columns=feats)
    X["site"] = rng.choice([f"s{k}" for k in range(8)], n)
    X["sex"] = rng.choice(["F", "M"], n)
    age = rng.uniform(20, 80, n)
    labels = rng.choice(["a", "b", "c"], n)

    t_pass = best(lambda: X[feats].to_numpy() * 2.0)
    t_age = best(lambda: check_target_proxies(X, age))
    t_cls = best(lambda: check_target_proxies(X, labels))
    t0 = time.perf_counter()
    ComBatHarmonizer(covariates=["sex"]).fit(X, age)
    t_fit = time.perf_counter() - t0
    print(f"table {n} x {p} float64 (+ site, sex)")
    print(f"  one pass X.to_numpy() * 2.0: {t_pass:.3f} s")
    print(f"  check_target_proxies, numeric y: {t_age:.3f} s "
          f"(ratio to one pass {t_age / t_pass:.2f})")
    print(f"  check_target_proxies, class labels: {t_cls:.3f} s "
          f"(ratio to one pass {t_cls / t_pass:.2f})")
    print(f"  ComBatHarmonizer.fit with y (check included): {t_fit:.2f} s; "
          f"check share {t_age / t_fit:.3f}")
    found = find_target_proxies(X, age)
    print(f"  proxies found among random features: {len(found)} (goal 0)")
    planted = X[feats[:50]].assign(age_months=12 * age)
    kinds = [(r.column, r.kind) for r in find_target_proxies(planted, age)]
    print(f"  planted age_months found: {kinds == [('age_months', 'unit')]}")


if __name__ == "__main__":
    main()
