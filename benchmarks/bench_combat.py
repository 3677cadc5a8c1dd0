"""ComBatHarmonizer against neuroHarmonize: time, peak memory, real data.

Each (method, size) runs in its own subprocess (fresh interpreter): the data are
generated there, then fit+transform of the same data is timed and its peak
memory traced with tracemalloc (numpy reports its buffers to tracemalloc);
peak memory is given as a multiple of the input feature matrix. Ours gets the
documented input, a DataFrame with the site and covariate columns; then the
transform of one new row (a one-row DataFrame) is timed against
neuroHarmonize's ``applyModelOne`` (median of repeated calls).

Then the FCON1000 table (../shared/data/multisite/pcn_fcon1000.csv): fit on 70%
(stratified by site), apply to 30%; age R^2 (ridge) before/after.

Site QC (``--site-qc`` runs only this part): :func:`site_predictability` on
rows the harmonizer was not fitted on (ComBat refitted on the training rows of
each of 3 site-stratified outer folds, the site classifier cross-validated
within each fold's held-out rows), with chance and the interval of 20
site-label permutations, on FCON1000 (sites with at least 5 subjects, adjusted
for age and sex) and on ABIDE's 68 MRIQC metrics
(../shared/data/multisite/mriqclearn_abide_iqms.tsv); for ABIDE also the floor
of the protocol (ComBat of randomly permuted "sites", scored on those labels)
and the rows ComBat was fitted on (whole table). ``--quick`` runs it on a
synthetic table instead.

Usage::

    python benchmarks/bench_combat.py --quick      # small size, seconds
    python benchmarks/bench_combat.py              # 1000x10000 and 2000x50000
    python benchmarks/bench_combat.py --sizes 1000x10000
    python benchmarks/bench_combat.py --speed --rounds 5  # the speed table only
    python benchmarks/bench_combat.py --site-qc    # site QC only (~1-2 min)
"""

import argparse
import contextlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
# ../shared/data next to the repository; MEDPREP_SHARED_DATA overrides it
SHARED = Path(os.environ.get("MEDPREP_SHARED_DATA") or REPO.parent / "shared" / "data")
DATA = SHARED / "multisite" / "pcn_fcon1000.csv"
ABIDE = SHARED / "multisite" / "mriqclearn_abide_iqms.tsv"


def make_data(n, p, seed=0):
    rng = np.random.default_rng(seed)
    n_sites = 4
    site = rng.integers(0, n_sites, size=n)
    age = rng.uniform(20, 80, size=n).astype(np.float32).astype(np.float64)
    sex = rng.integers(0, 2, size=n).astype(np.float64)
    data = rng.standard_normal((n, p))
    data *= np.exp(rng.normal(0, 0.3, size=(n_sites, p)))[site]
    data += rng.normal(0, 1, size=(n_sites, p))[site]
    data += np.outer(age / 50, rng.normal(0, 0.5, size=p))
    return data, np.array([f"s{k}" for k in site], dtype=object), age, sex


def _ours_call(data, site, age, sex):
    """The documented input: a DataFrame of features, site and covariates."""
    sys.path.insert(0, str(REPO))
    from sklearn_medprep import ComBatHarmonizer

    p = data.shape[1]
    # the feature block is ``data`` itself (no copy), so that `X * 2.0` below
    # reads the same memory as the harmonizer; column-major, the layout of a
    # table read from a file (and of ``pd.DataFrame(array)`` under pandas 3,
    # which copies)
    data = np.asfortranarray(data)
    table = pd.DataFrame(data, columns=[f"f{j}" for j in range(p)], copy=False)
    table["site"] = site
    table["age"] = age
    table["sex"] = sex
    if data.size > 1000 and not np.shares_memory(table["f0"].to_numpy(), data):
        raise RuntimeError("the DataFrame copied the feature matrix")
    state = {}

    def call():
        state["model"] = ComBatHarmonizer(covariates=["age", "sex"])
        return state["model"].fit_transform(table)

    def one_row():
        row = table.iloc[[7]]
        return (
            lambda: state["model"].transform(row),
            lambda out: out.iloc[0, :3].to_numpy(),
        )

    return call, lambda out: out.iloc[:3, :3].to_numpy(), one_row


def _neuroharmonize_call(data, site, age, sex):
    from neuroHarmonize import harmonizationLearn
    from neuroHarmonize.harmonizationApply import applyModelOne

    covars = pd.DataFrame({"SITE": site, "age": age, "sex": sex})
    state = {}

    def call():
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state["model"], out = harmonizationLearn(data, covars)
        return out

    def one_row():
        row, cov_row = data[7:8], covars.iloc[[7]]

        def apply():
            with contextlib.redirect_stdout(io.StringIO()):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return applyModelOne(row, cov_row, state["model"])

        return apply, lambda out: out[0, :3]

    return call, lambda out: out[:3, :3], one_row


def _combatlearn_call(data, site, age, sex):
    from combatlearn import ComBat

    covars = pd.DataFrame({"age": age, "sex": sex})
    batch = pd.Series(site)
    frame = pd.DataFrame(data)

    def call():
        model = ComBat(
            batch=batch, continuous_covariates=covars, method="fortin"
        )
        return np.asarray(model.fit_transform(frame))

    return call, lambda out: out[:3, :3], None


CALLS = {
    "ours": _ours_call,
    "neuroHarmonize": _neuroharmonize_call,
    "combatlearn": _combatlearn_call,
}


def run_one(method, n, p, rounds=3):
    """Time ``method``'s fit+transform against ``X * 2.0``, alternating rounds.

    Every round times ``X * 2.0`` on the feature matrix (one read and one
    write of it: the unit of "passes"), then fit+transform of the same data
    (held in the same memory); passes = fit+transform time / that round's
    ``X * 2.0`` time. Then one traced call for the peak memory, and the
    transform of one row.
    """
    from threadpoolctl import threadpool_limits

    small = make_data(40, 30)
    warm, _, _ = CALLS[method](*small)
    warm()  # first-call imports and caches out of the timing
    del warm, small
    data, site, age, sex = make_data(n, p)
    data = np.asfortranarray(data)  # every method gets the same array
    call, head, one_row = CALLS[method](data, site, age, sex)
    base, times = [], []
    with threadpool_limits(1):
        for _ in range(rounds):
            t0 = time.perf_counter()
            doubled = data * 2.0
            base.append(time.perf_counter() - t0)
            del doubled
            t0 = time.perf_counter()
            out = call()
            times.append(time.perf_counter() - t0)
            del out
        tracemalloc.start()
        out = call()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        result = np.asarray(head(out))
        del out
        one, one_out = float("nan"), [float("nan")] * 3
        if one_row is not None:
            apply, one_head = one_row()
            one = _median_time(apply)
            one_out = np.asarray(one_head(apply())).tolist()
    passes = [t / b for t, b in zip(times, base)]
    return {
        "time": float(np.median(times)),
        "base": float(np.median(base)),
        "passes": float(np.median(passes)),
        "passes_range": [min(passes), max(passes)],
        "peak_ratio": peak / data.nbytes,
        "head": result.tolist(),
        "one_row": one,
        "one_head": one_out,
    }


def _median_time(call, repeat=15):
    call()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _worker(method, n, p, rounds):
    """Run one method in a fresh process (clean imports and peak memory)."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = "1"  # threads pinned: BLAS on one thread, as X * 2.0 runs
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", method, str(n), str(p), str(rounds)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def speed(sizes, rounds=3, only=None):
    print(
        f"numpy {np.__version__}, pandas {pd.__version__}; each method in its own "
        f"process, threads pinned to 1 (BLAS and OpenMP); {rounds} rounds "
        "alternating `X * 2.0` on the feature matrix (float64, fresh output) "
        "with fit+transform of the same data; passes = fit+transform time / "
        "that round's `X * 2.0` time (median of the rounds, [range]); "
        "mem = peak memory traced (tracemalloc) during one fit+transform / "
        "feature matrix size (output included, input not); ours gets a "
        "DataFrame of features, site and covariates"
    )
    methods = ["ours"] + [
        m for m in ("neuroHarmonize", "combatlearn")
        if importlib.util.find_spec(m) is not None and (only is None or m in only)
    ]
    if len(methods) == 1:
        print(
            "neuroHarmonize is not installed: no reference to compare with "
            '(pip install "sklearn-medprep[neuroharmonize]", numpy 1.26); '
            "ours alone"
        )
    print(
        f"{'size':>12} {'method':>15} {'time s':>8} {'X*2.0 s':>8} "
        f"{'passes':>18} {'mem':>7} {'1 row ms':>9} {'max|diff|':>10}"
    )
    for n, p in sizes:
        res = {m: _worker(m, n, p, rounds) for m in methods}
        ours = res["ours"]
        for method, r in res.items():
            diff = np.abs(np.array(r["head"]) - np.array(ours["head"])).max()
            if not np.isnan(r["one_row"]):
                diff = max(
                    diff, np.abs(np.array(r["one_head"]) - ours["one_head"]).max()
                )
            low, high = r["passes_range"]
            ratio = "" if method == "ours" else f"  (x{r['time'] / ours['time']:.1f})"
            print(
                f"{f'{n}x{p}':>12} {method:>15} {r['time']:8.2f} {r['base']:8.4f} "
                f"{r['passes']:6.2f} [{low:4.1f}-{high:4.1f}] "
                f"{r['peak_ratio']:6.2f}x {r['one_row'] * 1e3:9.2f} "
                f"{diff:10.1e}{ratio}"
            )


def accuracy():
    """Max |error| against exact ComBat (no EB; tests/harmonization/combat_exact.py)."""
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "tests" / "harmonization"))
    from combat_exact import exact_combat
    from test_combat_accuracy import accuracy_table

    from sklearn_medprep import ComBatHarmonizer

    data, sites, age = accuracy_table(0)
    exact = exact_combat(data, sites, age[:, None])
    df = pd.DataFrame(data, columns=[f"f{j}" for j in range(data.shape[1])])
    df["site"], df["age"] = sites, age
    ours = ComBatHarmonizer(covariates=["age"], eb=False).fit_transform(df)
    line = (
        f"\naccuracy vs exact ComBat (no EB, {data.shape[0]}x{data.shape[1]}, "
        f"values ~{np.abs(exact).max():.0f}): ours max|err| "
        f"{np.abs(ours.to_numpy() - exact).max():.1e}"
    )
    if importlib.util.find_spec("neuroHarmonize") is not None:
        from neuroHarmonize import harmonizationLearn

        covars = pd.DataFrame({"SITE": sites, "age": age})
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, theirs = harmonizationLearn(data, covars, eb=False)
        line += f", neuroHarmonize {np.abs(theirs - exact).max():.1e}"
    print(line)


def real_data():
    if not DATA.exists():
        print(f"\n{DATA} not found: real-data benchmark skipped")
        return
    sys.path.insert(0, str(REPO))
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sklearn_medprep import ComBatHarmonizer

    df = pd.read_csv(DATA).drop(columns="sub_id")
    feats = [c for c in df.columns if c not in ("site", "age", "sex")]
    train, test = train_test_split(
        df, test_size=0.3, stratify=df["site"], random_state=0
    )
    combat = ComBatHarmonizer(covariates=["age", "sex"])
    t0 = time.perf_counter()
    h_train = combat.fit_transform(train)
    h_test = combat.transform(test)
    elapsed = time.perf_counter() - t0

    def age_r2(tr, te):
        reg = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))
        reg.fit(tr[feats], train["age"])
        return r2_score(test["age"], reg.predict(te[feats]))

    n_sites = df["site"].nunique()
    print(
        f"\nFCON1000: {len(df)} subjects, {len(feats)} features, {n_sites} sites; "
        f"fit on {len(train)}, apply to {len(test)} ({elapsed:.2f} s)"
    )
    print(
        f"  age R^2                 before {age_r2(train, test):.3f}  "
        f"after {age_r2(h_train, h_test):.3f}"
    )


def _site_qc_rows(title, rows, covariates=None):
    """One line per row: site predictability on rows the harmonizer never saw."""
    from sklearn_medprep import site_predictability

    print(
        f"\n{title}: site predictability (balanced accuracy; ComBat refitted on "
        "the training rows of 3 site-stratified outer folds, site classifier "
        "5-fold CV within each fold's held-out rows; 20 site-label permutations)"
    )
    for label, (table, harmonizer, features) in rows.items():
        start = time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # over-correction: in the verdict
            score = site_predictability(
                table, "site", features, harmonizer=harmonizer,
                covariates=covariates,
            )
        print(
            f"  {label:<46} {score.summary()} "
            f"[{time.process_time() - start:.1f} CPU s]"
        )


def site_qc_quick():
    """The site QC rows on a synthetic table (no shared data needed)."""
    sys.path.insert(0, str(REPO))
    from sklearn_medprep import ComBatHarmonizer
    from sklearn_medprep.datasets import make_multisite_features

    df = make_multisite_features(240, 20, n_sites=4, site_effect=1.5, random_state=0)
    df = df.drop(columns=["y", "age", "sex"])
    feats = [c for c in df.columns if c != "site"]
    shuffled = df.assign(site=np.random.default_rng(0).permutation(df["site"]))
    whole = ComBatHarmonizer().fit_transform(df).assign(site=df["site"])
    _site_qc_rows(
        "synthetic (240 x 20, 4 sites)",
        {
            "raw": (df, None, feats),
            "ComBat, held-out rows": (df, ComBatHarmonizer(), feats),
            "ComBat of permuted sites (floor), held-out": (
                shuffled, ComBatHarmonizer(), feats,
            ),
            "ComBat on all rows, scored on them": (whole, None, feats),
        },
    )


def site_qc_fcon1000():
    if not DATA.exists():
        print(f"\n{DATA} not found: FCON1000 site QC skipped")
        return
    sys.path.insert(0, str(REPO))
    from sklearn_medprep import ComBatHarmonizer

    df = pd.read_csv(DATA).drop(columns="sub_id")
    df = df[df["site"].map(df["site"].value_counts()) >= 5].reset_index(drop=True)
    feats = [c for c in df.columns if c not in ("site", "age", "sex")]
    combat = ComBatHarmonizer(covariates=["age", "sex"])
    _site_qc_rows(
        f"FCON1000 ({len(df)} subjects of the {df['site'].nunique()} sites with at "
        f"least 5, {len(feats)} features, adjusted for age and sex)",
        {"raw": (df, None, feats), "ComBat, held-out rows": (df, combat, feats)},
        covariates=["age", "sex"],
    )


def abide_iqms():
    """Degenerate real table: ABIDE image-quality metrics, some constant per site."""
    if not ABIDE.exists():
        print(f"\n{ABIDE} not found: ABIDE benchmark skipped")
        return
    sys.path.insert(0, str(REPO))
    from sklearn_medprep import ComBatHarmonizer

    df = pd.read_csv(ABIDE, sep="\t")
    feats = [
        c for c in df.columns if c not in ("subject_id", "site")
        and not c.startswith("rater")
    ]
    df[feats] = df[feats].astype(float)
    df = df[df["site"].map(df["site"].value_counts()) >= 10].reset_index(drop=True)
    df = df[feats + ["site"]]
    constant = [c for c in feats if (df.groupby("site")[c].nunique() <= 1).any()]
    others = [c for c in feats if c not in constant]
    combat = ComBatHarmonizer(features=feats)
    shuffled = df.assign(site=np.random.default_rng(0).permutation(df["site"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = combat.fit_transform(df).assign(site=df["site"])
    _site_qc_rows(
        f"ABIDE IQMs ({len(df)} scans, {df['site'].nunique()} sites, {len(feats)} "
        f"metrics, {len(constant)} constant within some site)",
        {
            "raw": (df, None, feats),
            "ComBat, held-out rows": (df, combat, feats),
            f"  the {len(constant)} constant-in-a-site metrics": (
                df, combat, constant,
            ),
            f"  the {len(others)} others": (df, combat, others),
            "raw, permuted sites": (shuffled, None, feats),
            "ComBat of permuted sites (floor), held-out": (shuffled, combat, feats),
            "ComBat on all rows, scored on them": (whole, None, feats),
        },
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small size only")
    parser.add_argument(
        "--sizes", nargs="+", help="sizes as ROWSxFEATURES, e.g. 1000x10000"
    )
    parser.add_argument("--site-qc", action="store_true", help="site QC only")
    parser.add_argument(
        "--speed", action="store_true", help="the time/passes/memory table only"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="timed rounds per method and size"
    )
    parser.add_argument(
        "--references", nargs="*", default=None,
        help="references to time (default: every one installed; none: ours only)",
    )
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        method, n, p, rounds = args.worker
        print(json.dumps(run_one(method, int(n), int(p), int(rounds))))
        return
    if args.site_qc and args.quick:
        site_qc_quick()
        return
    if args.site_qc:
        site_qc_fcon1000()
        abide_iqms()
        return
    sizes = [(300, 2000)] if args.quick else [(1000, 10_000), (2000, 50_000)]
    if args.sizes:
        sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes]
    speed(sizes, args.rounds, args.references)
    if args.speed:
        return
    accuracy()
    real_data()
    if args.quick:
        site_qc_quick()
    else:
        site_qc_fcon1000()
        abide_iqms()


if __name__ == "__main__":
    main()
