"""Benchmark longitudinal ComBat against its reference and against ComBat.

(a) agreement and time: ``LongitudinalComBatHarmonizer.fit_transform`` vs the
    reference computed in this script: statsmodels ``mixedlm`` (formula
    interface, REML) per feature, then longCombat's steps written out
    (constrained batch effects, standardization by the residual sd,
    neuroCombat's parametric EB iteration, adjustment, the random intercept
    kept). Rounds alternate which runs first; BLAS/OpenMP pinned to 1 thread.
    Printed: the maximum absolute difference and the median time ratio
    ours / reference.
(b) on a simulated cohort with known site effects (location and scale) and
    subjects with 1 to 6 visits (subject levels, a slope in time):
    ``ComBatHarmonizer`` (visits as independent rows) and
    ``LongitudinalComBatHarmonizer``, both with ``time`` as covariate. Printed
    per method: the spread of the site means left (the harmonized data minus
    the noise-free truth, averaged per site; sd over sites, mean over
    features); the within-subject change (each visit minus its subject's
    first visit): its slope in time (least squares) against the true slope
    (RMS over features), and the sd of its residual at each site, max / min
    over the sites (mean over features; 1 when every site's within-subject
    variation is on one scale).

Usage: python benchmarks/bench_longitudinal.py [--quick] [--rounds N]
"""

import argparse
import sys
import time
from pathlib import Path

# measure the checkout this script belongs to, not an installed copy
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import statsmodels.formula.api as smf  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from sklearn_medprep import (  # noqa: E402
    ComBatHarmonizer,
    LongitudinalComBatHarmonizer,
)


def cohort(n_subjects, n_features, seed, max_visits=6):
    """Subjects with 1..max_visits visits at one of 3 sites; known effects."""
    rng = np.random.default_rng(seed)
    visits = rng.integers(1, max_visits + 1, n_subjects)
    subj = np.repeat(np.arange(n_subjects), visits)
    time_ = np.concatenate([np.arange(v, dtype=float) for v in visits])
    site = rng.permutation(np.arange(n_subjects) % 3)[subj]
    shift = rng.normal(0, 1.0, (3, n_features))
    scale = rng.uniform(0.6, 1.6, (3, n_features))
    slope = rng.normal(0, 0.4, n_features)
    level = rng.normal(0, 1.5, (n_subjects, n_features))[subj]
    truth = level + slope * time_[:, None]
    noise = rng.normal(0, 0.5, truth.shape)
    values = truth + shift[site] + scale[site] * noise
    feats = [f"f{j}" for j in range(n_features)]
    table = pd.DataFrame(values, columns=feats)
    table.insert(0, "subject", [f"s{i:03d}" for i in subj])
    table.insert(1, "site", np.array(["A", "B", "C"])[site])
    table.insert(2, "time", time_)
    return table, pd.DataFrame(truth, columns=feats), slope, feats


def _it_sol(s, g_hat, d_hat, g_bar, t2, a, b, conv=1e-4):
    n = s.shape[0]
    g_old, d_old = g_hat.copy(), d_hat.copy()
    while True:
        g_new = (t2 * n * g_hat + d_old * g_bar) / (t2 * n + d_old)
        d_new = (0.5 * ((s - g_new) ** 2).sum(axis=0) + b) / (n / 2.0 + a - 1.0)
        change = max((np.abs(g_new - g_old) / g_old).max(),
                     (np.abs(d_new - d_old) / d_old).max())
        g_old, d_old = g_new, d_new
        if not change > conv:
            return g_new, d_new


def reference(table, feats):
    """longCombat's steps with statsmodels mixedlm (see the module docstring)."""
    sites = sorted(table["site"].unique())
    codes = pd.Index(sites).get_indexer(table["site"])
    n_i = np.bincount(codes)
    std = np.empty((len(table), len(feats)))
    kept = np.empty_like(std)
    sd = np.empty(len(feats))
    for v, f in enumerate(feats):
        fit = smf.mixedlm(f"{f} ~ time + C(site)", table,
                          groups=table["subject"]).fit(reml=True)
        batch = np.array([0.0] + [fit.fe_params[f"C(site)[T.{s}]"]
                                  for s in sites[1:]])
        adj = batch - (n_i[1:] @ batch[1:]) / len(table)
        sd[v] = np.sqrt(fit.scale)
        pred = np.asarray(fit.fittedvalues)
        std[:, v] = (table[f].to_numpy() - pred + adj[codes]) / sd[v]
        kept[:, v] = pred - adj[codes]
    out = np.empty_like(std)
    for i in range(len(sites)):
        s = std[codes == i]
        g_hat, d_hat = s.mean(axis=0), s.var(axis=0, ddof=1)
        m, s2 = d_hat.mean(), d_hat.var(ddof=1)
        g, d = _it_sol(s, g_hat, d_hat, g_hat.mean(), g_hat.var(ddof=1),
                       (2 * s2 + m**2) / s2, (m * s2 + m**3) / s2)
        out[codes == i] = sd * (s - g) / np.sqrt(d) + kept[codes == i]
    return out


def part_a(rounds, n_subjects, n_features):
    table, _, _, feats = cohort(n_subjects, n_features, seed=0)
    est = LongitudinalComBatHarmonizer(covariates=["time"], features=feats)
    ours_t, ref_t = [], []
    for r in range(rounds):
        order = ["ours", "ref"] if r % 2 == 0 else ["ref", "ours"]
        for who in order:
            start = time.perf_counter()
            if who == "ours":
                ours = est.fit_transform(table).to_numpy()
                ours_t.append(time.perf_counter() - start)
            else:
                ref = reference(table, feats)
                ref_t.append(time.perf_counter() - start)
    diff = np.abs(ours - ref).max()
    ratio = np.median(np.array(ours_t) / np.array(ref_t))
    print(f"(a) {len(table)} visits of {n_subjects} subjects, {n_features} "
          f"features, 3 sites, {rounds} alternating rounds, 1 thread")
    print(f"    max |ours - reference| {diff:.3e}")
    print(f"    time ours / reference: median {ratio:.3f} (ours median "
          f"{np.median(ours_t):.3f} s, reference median {np.median(ref_t):.3f} s)")


def part_b(n_subjects, n_features, seeds):
    print(f"(b) simulated cohorts: {n_subjects} subjects with 1-6 visits, "
          f"{n_features} features, 3 sites, seeds {list(seeds)}")
    for seed in seeds:
        table, truth, slope, feats = cohort(n_subjects, n_features, seed=seed)
        sites = table["site"].to_numpy()
        first = table.groupby("subject")["time"].transform("min") == table["time"]
        later = ~first.to_numpy()
        rows = {"raw": table[feats]}
        rows["ComBat"] = ComBatHarmonizer(
            covariates=["time"], features=feats
        ).fit_transform(table)[feats]
        rows["longitudinal"] = LongitudinalComBatHarmonizer(
            covariates=["time"], features=feats
        ).fit_transform(table)
        dt = table["time"].to_numpy()[later, None]
        for name, out in rows.items():
            err = pd.DataFrame(out.to_numpy() - truth.to_numpy())
            spread = err.groupby(sites).mean().std().mean()
            start = out.where(first).groupby(table["subject"]).transform("first")
            change = (out - start).to_numpy()[later]
            est = (change * dt).sum(axis=0) / (dt**2).sum()  # slope, no intercept
            slope_err = np.sqrt(np.mean((est - slope) ** 2))
            noise = pd.DataFrame(change - est * dt).groupby(sites[later]).std()
            ratio = (noise.max() / noise.min()).mean()
            print(f"    seed {seed} {name:>12}: site-mean spread left {spread:.3f}; "
                  f"within-subject sd max/min over sites {ratio:.2f}; "
                  f"slope RMS error {slope_err:.3f}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rounds = 2 if args.quick else args.rounds
    with threadpool_limits(1):
        part_a(rounds, 20 if args.quick else 60, 4 if args.quick else 8)
        part_b(30 if args.quick else 90, 4 if args.quick else 8,
               range(1) if args.quick else range(3))


if __name__ == "__main__":
    main()
