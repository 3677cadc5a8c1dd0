"""Import plus first ComBat fit in a fresh process: sklearn-medprep vs neuroHarmonize.

A ComBat-only user (a FreeSurfer table, no images) pays for every module the
first ``from sklearn_medprep import ComBatHarmonizer`` loads. Each round starts
two fresh interpreters, ours and neuroHarmonize's, alternating which goes first,
each timing its import and one ``fit_transform`` of the same table (FCON1000's
150 thickness features where ``../shared/data`` is present, else a synthetic
table of the same shape), BLAS on one thread. Ours gets the DataFrame a user
passes; neuroHarmonize gets what it takes (a numpy array and a covariate
DataFrame). Also printed: the modules each import loads, and whether ours loads
an image library (SimpleITK, torch, TorchIO, PyRadiomics, nibabel), and the
resident-memory high-water mark of each process (``ru_maxrss``).

    python benchmarks/bench_import.py [--quick] [--rounds N]

neuroHarmonize (numpy < 2) is installed in ``.venv-numpy1``: run the script with
that interpreter for the ratio; elsewhere only our figures are printed.
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MEDPREP_SHARED_DATA") or REPO.parent / "shared" / "data")
FCON = SHARED / "multisite" / "pcn_fcon1000.csv"
HEAVY = ("SimpleITK", "torch", "torchio", "radiomics", "nibabel", "matplotlib")

COMMON = """
import json, resource, sys, time
start = time.perf_counter()
{imports}
imported = time.perf_counter()
import numpy as np, pandas as pd
table = pd.read_pickle({table!r})
{fit}
done = time.perf_counter()
heavy = {heavy!r}
print(json.dumps({{
    "import": imported - start, "total": done - start,
    "modules": len(sys.modules),
    "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "heavy": sorted({{m.split(".")[0] for m in sys.modules}} & set(heavy)),
    "check": float(np.asarray(out, dtype=float)[:, :3].sum()),
}}))
"""

OURS = COMMON.format(
    imports="from sklearn_medprep import ComBatHarmonizer",
    fit=(
        "out = ComBatHarmonizer(site='site', covariates=['age', 'sex'])"
        ".fit_transform(table).to_numpy()"
    ),
    table="__TABLE__", heavy=HEAVY,
)
THEIRS = COMMON.format(
    imports="from neuroHarmonize import harmonizationLearn",
    fit=(
        "features = [c for c in table.columns if c not in ('site', 'age', 'sex')]\n"
        "covars = table[['site', 'age', 'sex']].rename(columns={'site': 'SITE'})\n"
        "model, out = harmonizationLearn(table[features].to_numpy(), covars)"
    ),
    table="__TABLE__", heavy=HEAVY,
)


def make_table(path, quick):
    import numpy as np
    import pandas as pd

    if FCON.is_file():
        raw = pd.read_csv(FCON, index_col="sub_id")
        thickness = [c for c in raw.columns if c.endswith("_thickness")][:150]
        table = raw[thickness].copy()
        table["site"] = raw["site"].astype(str)
        table["age"] = raw["age"].astype(float)
        table["sex"] = raw["sex"].astype(float)
        counts = table["site"].value_counts()
        table = table[table["site"].isin(counts[counts >= 10].index)]
        source = f"FCON1000, {len(table)} subjects x {len(thickness)} features"
    else:
        rng = np.random.default_rng(0)
        n, p = (300, 50) if quick else (1000, 150)
        table = pd.DataFrame(rng.standard_normal((n, p)),
                             columns=[f"f{k}" for k in range(p)])
        table["site"] = [f"s{k}" for k in rng.integers(0, 8, size=n)]
        table["age"] = rng.uniform(20, 80, size=n)
        table["sex"] = rng.integers(0, 2, size=n).astype(float)
        table.iloc[:, :p] += rng.normal(0, 1, (8, p))[
            table["site"].str[1:].astype(int)]
        source = f"synthetic, {n} subjects x {p} features (../shared absent)"
    table.to_pickle(path)
    return source


def run(code, table):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    code = code.replace("__TABLE__", str(table))
    result = subprocess.run([sys.executable, "-c", code],
                            capture_output=True, text=True, env=env, timeout=600,
                            cwd=REPO)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 7)
    table = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_import_{os.getpid()}.pkl"
    source = make_table(table, args.quick)
    have_reference = importlib.util.find_spec("neuroHarmonize") is not None
    ours, theirs = [], []
    try:
        for k in range(rounds):
            order = [("ours", OURS), ("nh", THEIRS)] if have_reference else [
                ("ours", OURS)]
            if k % 2:
                order.reverse()
            for name, code in order:
                (ours if name == "ours" else theirs).append(run(code, table))
    finally:
        table.unlink(missing_ok=True)

    def med(runs, key):
        return statistics.median(r[key] for r in runs)

    print(f"table: {source}; {rounds} rounds, fresh interpreter each, alternating, "
          "BLAS on one thread; median of rounds")
    print(f"ours: import {med(ours, 'import'):.3f} s, import + first fit_transform "
          f"{med(ours, 'total'):.3f} s, resident high-water "
          f"{med(ours, 'rss'):.0f} MiB, "
          f"{ours[0]['modules']} modules loaded; image "
          f"libraries loaded: {ours[0]['heavy'] or 'none'}")
    if not have_reference:
        print("neuroHarmonize is not installed (run with .venv-numpy1/bin/python "
              "for the ratio)")
        return
    print(f"neuroHarmonize: import {med(theirs, 'import'):.3f} s, import + first "
          f"harmonizationLearn {med(theirs, 'total'):.3f} s, resident high-water "
          f"{med(theirs, 'rss'):.0f} MiB, {theirs[0]['modules']} "
          "modules loaded")
    ratios = [a["total"] / b["total"] for a, b in zip(ours, theirs)]
    print("import + first fit, ours / neuroHarmonize: median "
          f"{statistics.median(ratios):.2f} (rounds {min(ratios):.2f}-"
          f"{max(ratios):.2f})")
    diff = abs(ours[0]["check"] - theirs[0]["check"]) / abs(theirs[0]["check"])
    print(f"outputs agree: rel diff of a column sum {diff:.1e}")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))  # this checkout, not an installed copy
    main()
