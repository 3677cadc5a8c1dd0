"""The benchmark scripts keep working and print real figures (quick sizes).

No timing is asserted (a shared machine makes wall-clock asserts flaky); what is
asserted is that every script measured what it claims: its table rows are
printed with finite, positive numbers, and the outputs compared against the
reference tool in the same run agree.
"""

import importlib.util
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
NUM = r"(\d+(?:\.\d*)?(?:e[-+]?\d+)?)"


def _numbers(row):
    return [float(v) for v in re.findall(NUM, row)]


def _positive(values, what):
    assert values, f"no {what} printed"
    for value in values:
        assert math.isfinite(value) and value > 0, (what, values)


def check_cache(out):
    (a_ratio,) = re.search(r"hit/extract " + NUM + r" \(goal", out).groups()
    _positive([float(a_ratio)], "hit/extract")
    assert re.search(r"extractions logged: (\d+) \(goal \1\); identical output: "
                     r"True", out), out[-2000:]
    assert re.search(r"extractions with memory: (\d+) \(goal \1\)", out)
    (speedup,) = re.search(r"speed-up x\s*" + NUM, out).groups()
    _positive([float(speedup)], "grid-search speed-up")
    assert "identical scores: True" in out
    # the preprocessed chain: no image transformed twice for one fitted transform
    assert "most per (image, fitted transform): 1;" in out
    warm = re.search(r"warm: +" + NUM + r"s, images transformed (\d+)", out)
    assert warm and int(warm.group(2)) == 0, out[-2000:]
    # the warm run extracts nothing: every image extracted once in the cold run
    assert re.search(r"extractions logged: (\d+) for \1 images", out), out[-2000:]
    ratios = re.search(r"warm / cold, whole nested CV: " + NUM + r" .*steps only: "
                       + NUM, out).groups()
    _positive([float(r) for r in ratios], "warm / cold")  # times: no bound
    # the demo's search fits each fold's ComBat once (5 x (3 + 1)), the
    # previous one once per candidate (5 x (3 x 3 + 1)); the same scores
    fits = sorted(int(n) for _, n in re.findall(r"ComBat +" + NUM + r"s \((\d+) "
                                                r"fits", out))
    assert fits == [20, 20, 20, 50], out[-2000:]
    assert "identical outer scores in every run: True" in out
    (ratio,) = re.search(r"the demo's warm / the previous search's warm: " + NUM,
                         out).groups()
    _positive([float(ratio)], "demo / previous warm")
    # the same in CPU time, the warm run in the same process, and the groups
    cpu = re.search(r"in CPU time .*: warm / cold " + NUM + r"; warm in the same "
                    r"process / cold " + NUM, out)
    assert cpu, out[-2000:]
    _positive([float(r) for r in cpu.groups()], "warm / cold CPU")
    same = re.search(r"warm, same process: +" + NUM + r"s, images transformed "
                     r"(\d+)", out)
    assert same and int(same.group(2)) == 0, out[-2000:]
    groups = re.findall(r"cache-served steps \(preprocessing \+ radiomics\) "
                        + NUM + r", ComBat " + NUM + r", logistic regression "
                        + NUM + r", other \(scaler, search, scoring\) " + NUM, out)
    assert len(groups) == 2, out[-2000:]
    for shares in groups:
        _positive([float(v) for v in shares[:3]], "group shares")


def check_combat(out):
    # size, method, time s, X*2.0 s, passes [range], mem, 1-row ms, max|diff|
    rows = re.findall(r"^\s*(\d+)x(\d+)\s+(ours|neuroHarmonize|combatlearn)\s+(.*)$",
                      out, re.M)
    assert rows, "no size row printed"
    methods = {method for _, _, method, _ in rows}
    assert "ours" in methods, out[-2000:]
    if importlib.util.find_spec("neuroHarmonize") is None:
        assert "neuroHarmonize is not installed" in out
    else:
        assert "neuroHarmonize" in methods, out[-2000:]
    for _, _, method, rest in rows:
        values = _numbers(rest.replace("nan", ""))
        time_s, double_s, passes, low, high, mem = values[:6]
        _positive([time_s, double_s, passes, low, high, mem], f"{method} figures")
        assert low <= passes <= high, rest
        diff = float(rest.split()[-1] if method == "ours" else rest.split()[-2])
        if method == "ours":
            assert diff == 0.0, rest  # ours against itself
        elif method == "neuroHarmonize":
            assert diff <= 1e-8, "ComBat differs from neuroHarmonize"
    (err,) = re.search(r"ours max\|err\| " + NUM, out).groups()
    assert float(err) < 1e-12, "ComBat differs from the exact computation"
    # site QC (synthetic in --quick): raw, held-out rows, floor, fitted rows
    qc = {label: rest for label, rest in re.findall(
        r"^  (raw|ComBat, held-out rows|ComBat of permuted sites \(floor\), "
        r"held-out|ComBat on all rows, scored on them)\s+(.*)$", out, re.M)}
    assert len(qc) == 4, out[-2000:]
    check_site_qc([re.search(SITE_QC, rest).groups() for rest in qc.values()])
    assert "site signal remains" in qc["raw"]
    assert "below chance: over-correction" in qc["ComBat on all rows, scored on them"]


def check_patches(out):
    (cohort_ratio,) = re.search(r"cohort x3 at queue \d+: peak increase ratio " + NUM,
                                out).groups()
    _positive([float(cohort_ratio)], "peak increase ratio")
    (overhead,) = re.search(r"overhead ratio ours / plain: " + NUM, out).groups()
    _positive([float(overhead)], "overhead ratio")


def check_gpu(out):
    two = "no CUDA device: CPU figures only" not in out
    assert two == bool(re.search(r"^(CUDA device|dry run):", out, re.M)), out[-2000:]
    rows = [line for line in out.splitlines() if line.startswith("TorchIO ")]
    assert len(rows) == 7, out[-2000:]
    for row in rows:
        values = _numbers(row)
        if "fails on CUDA tensors" in row:
            assert two
            values = values[:1]
        # cpu; or cpu, cuda, cuda / cpu
        assert len(values) == (3 if two and "fails on" not in row else 1), row
        _positive(values, row)
    for label in ("patch training (fit)", "sliding-window inference"):
        (row,) = [line for line in out.splitlines() if line.startswith(label)]
        values = _numbers(row)
        assert len(values) == (3 if two else 1), row
        _positive(values, label)
    if two:  # the same computation on both devices agrees
        diffs = [float(d) for d in re.findall(r"max \|cuda - cpu\| (?:probability )?"
                                              + NUM, out)]
        assert len(diffs) >= 1 and max(diffs) <= 1e-3, diffs


def check_radiomics(out):
    count, goal = map(int, re.search(r"extractions with memory: (\d+) \(goal (\d+)\)",
                                     out).groups())
    assert count == goal > 0
    (speedup,) = map(float, re.search(r"speed-up x\s*" + NUM, out).groups())
    _positive([speedup], "cache speed-up")
    assert "identical scores: True" in out
    # features compared against PyRadiomics in the same run (with shared data)
    diffs = re.findall(r"max rel diff (\S+)", out)
    assert all(float(d) <= 1e-12 for d in diffs), diffs


def check_torchio(out):
    rows = [line for line in out.splitlines() if line.startswith("TorchIO")]
    assert len(rows) == 6, out[-2000:]
    assert rows[-1].startswith("TorchIOCollate")
    for row in rows:
        # the last six numbers: ours, plain, wall ratio, ours, plain, CPU ratio
        values = _numbers(row)[-6:]
        assert len(values) == 6, row
        _positive(values, "TorchIO figures")
        wall, plain_wall, wall_ratio = values[:3]
        # the three are printed to 3 decimals: the ratio of the printed times
        # can be off by the rounding of each (0.0005), large for tiny times
        rounding = 5e-4 / plain_wall * (1 + wall_ratio) + 5e-4
        assert wall_ratio == pytest.approx(wall / plain_wall, rel=0.05,
                                           abs=max(2e-3, rounding))


def check_voxel(out):
    if importlib.util.find_spec("neuroHarmonize") is None:
        assert "neuroHarmonize is not installed" in out
    else:
        ratios = re.search(r"time ratio neuroHarmonize/ours: " + NUM + r"x; peak "
                           r"memory ratio neuroHarmonize/ours: " + NUM + "x", out)
        assert ratios, out[-2000:]
        _positive([float(v) for v in ratios.groups()], "voxel ratios")
        (rel,) = re.search(r"max rel diff (\S+)", out).groups()
        assert float(rel) <= 1e-6, "voxel ComBat differs from neuroHarmonize"
    written = re.search(r"(\d+) harmonized images written", out)
    assert written and int(written.group(1)) > 0, out[-2000:]
    peak = re.search(r"ours: +" + NUM + r" s, peak " + NUM + " MiB", out.split(
        "neuroHarmonize would need")[-1])
    assert peak, out[-2000:]
    _positive([float(v) for v in peak.groups()], "voxel time and peak")


def check_ibsi_texture(out):
    assert "discretisation identical to PyRadiomics' binImage: True" in out, out
    (rel,) = re.search(r"GLCM \+ GLDM features on this image: max rel diff (\S+)",
                       out).groups()
    assert float(rel) <= 1e-9, "our GLCM/NGLDM differ from PyRadiomics'"
    ratios = re.search(r"CPU time ratio PyRadiomics/ours: median " + NUM
                       + r"x \(rounds " + NUM + "-" + NUM + r"\); wall time ratio "
                       + NUM + "x", out)
    assert ratios, out[-2000:]
    _positive([float(v) for v in ratios.groups()], "IBSI texture ratios")
    alone = re.search(r"features alone, on the cropped ROI: texture_features CPU "
                      + NUM + r" ms, .* classes CPU " + NUM + r" ms; CPU time ratio "
                      r"PyRadiomics/ours " + NUM + "x", out)
    assert alone, out[-2000:]
    _positive([float(v) for v in alone.groups()], "IBSI texture features alone")
    families = re.search(r"ours per family \(CPU, median\): GLDZM " + NUM
                         + " ms, GLCM " + NUM + " ms, NGLDM " + NUM + " ms", out)
    assert families, out[-2000:]


SITE_QC = (r"(\d\.\d{3}) \(chance (\d\.\d{3}), permuted-site interval "
           r"(\d\.\d{3})-(\d\.\d{3}), p = ([\d.e-]+)\): (site signal remains|"
           r"at chance|below chance: over-correction)")


def check_site_qc(lines):
    """Site-predictability summaries: consistent numbers and verdict."""
    assert lines
    for score, chance, low, high, p, verdict in lines:
        score, chance, low, high, p = map(float, (score, chance, low, high, p))
        assert 0 <= low <= high <= 1 and 0 < chance < 1 and 0 < p <= 1
        expected = ("below chance: over-correction" if score < low else
                    "site signal remains" if score > high else "at chance")
        assert verdict == expected, (score, low, high, verdict)


def check_target_protection(out):
    rows = re.findall(r"^  (raw features|recommended: .*?)\s+" + NUM + r"\s+(-?[\d.]+)"
                      r"\s+([-+][\d.]+)\s+(\S+)", out, re.M)
    assert len(rows) == 4, out[-2000:]  # raw and recommended, two splitters
    for _, mae, r2, _, site in rows:
        _positive([float(mae)], "MAE")
        assert -1 <= float(r2) <= 1, r2
        assert site == "-" or 0 <= float(site) <= 1, site
    assert [site for *_, site in rows][2:] == ["-", "-"]  # LeaveOneSiteOut
    # the site-predictability block: chance, permutation interval, verdict
    block = out.split("site predictability, SiteStratifiedKFold(5) rows")[1]
    for label in ("raw features", "recommended: ComBat in pipeline",
                  "common mistake", "former protocol", "adjusted for age and sex"):
        line = r"^  " + re.escape(label) + r".*" + SITE_QC
        assert re.search(line, block, re.M), label
    check_site_qc(re.findall(SITE_QC, block))
    ratios = re.search(r"R2 ratio (-?[\d.]+), R2 difference ([-+][\d.]+) .*?site "
                       r"predictability ratio " + NUM, out, re.S)
    assert ratios, out[-2000:]
    r2_ratio, r2_diff, site_ratio = map(float, ratios.groups())
    assert math.isfinite(r2_ratio) and math.isfinite(r2_diff) and site_ratio >= 0
    # the decomposition rows: project, location fully removed, site alone
    for label in ("same, target_scale='project'", "location only, no EB",
                  "site alone (one-hot site, no features)"):
        assert re.search(r"^  " + re.escape(label), out, re.M), label
    share = re.search(r"t2/\(t2\+1\) of each feature's deviation from it: median "
                      + NUM + r" over sites \(min " + NUM + r", max " + NUM, out)
    assert share, out[-2000:]
    median, low, high = map(float, share.groups())
    assert 0 <= low <= median <= high <= 1


def check_import(out):
    ours = re.search(r"import \+ first fit_transform " + NUM + r" s, resident "
                     r"high-water " + NUM + r" MiB, (\d+) modules loaded; image "
                     r"libraries loaded: none", out)
    assert ours, out[-2000:]  # a ComBat-only user loads no image library
    _positive([float(ours.group(1))], "import + first fit")
    if importlib.util.find_spec("neuroHarmonize") is None:
        assert "neuroHarmonize is not installed" in out
    else:
        (ratio,) = re.search(r"ours / neuroHarmonize: median " + NUM, out).groups()
        assert re.search(r"neuroHarmonize: import " + NUM + " s", out), out[-2000:]
        _positive([float(ratio)], "import ratio")
        (diff,) = re.search(r"rel diff of a column sum (\S+)", out).groups()
        assert float(diff) <= 1e-8, "ComBat differs from neuroHarmonize"


def check_proxy(out):
    times = re.findall(r"check_target_proxies, [a-z ]+: " + NUM + r" s \(ratio to "
                       r"one pass " + NUM + r"\)", out)
    assert len(times) == 2, out[-2000:]
    _positive([float(v) for pair in times for v in pair], "check time / ratio")
    share = re.search(r"check included\): " + NUM + r" s; check share " + NUM, out)
    assert share, out[-2000:]
    _positive([float(v) for v in share.groups()], "ComBat fit / share")
    assert "proxies found among random features: 0 (goal 0)" in out
    assert "planted age_months found: True" in out


def check_read(out):
    if "absent: nothing to measure" in out:
        return
    rows = re.findall(r"^  (\S+) +" + NUM + r"s +" + NUM + r"s +" + NUM + r"s +"
                      + NUM + " +" + NUM + " +" + NUM + r" +(True|False)$", out, re.M)
    assert len(rows) >= 5, out[-2000:]
    for row in rows:
        _positive([float(v) for v in row[1:7]], "read times / ratios")
        assert row[7] == "True", row  # our read equals SimpleITK's


def check_new_sites(out):
    rows = dict(re.findall(
        r"^(raw features|(?:passthrough|estimate[a-z_]*)(?:, [^\n]*?)?)\s+"
        r"(-?\d+\.\d+) ",
        out, re.M))
    for name in ("raw features", "passthrough", "passthrough, mean_only",
                 "estimate", "estimate_outside_target",
                 "estimate_outside_target, mean_only", "estimate_prior",
                 "estimate_prior, mean_only", "estimate_prior_cov",
                 "estimate_prior_cov, target_scale='project'"):
        assert name in rows, (name, out[-2000:])
    accuracies = re.findall(r" (\d\.\d{3}) \[(\d\.\d{3}),(\d\.\d{3})\]", out)
    assert len(accuracies) == len(rows), out[-2000:]
    for values in accuracies:
        assert all(0.0 <= float(v) <= 1.0 for v in values), values


def check_ibsi_families(out):
    assert re.search(r"all (\d+) of our features finite: True", out), out[-2000:]
    ratios = re.search(r"added CPU time ours/PyRadiomics: median " + NUM
                       + r"x \(rounds " + NUM + "-" + NUM + r"\); wall time ratio "
                       + NUM + "x", out)
    assert ratios, out[-2000:]
    _positive([float(v) for v in ratios.groups()], "IBSI families ratios")
    families = re.search(r"ours per family \(CPU, median\): morphology_features "
                         + NUM + " ms, intensity_features " + NUM
                         + " ms, histogram_features " + NUM + " ms", out)
    assert families, out[-2000:]


def check_longitudinal(out):
    (diff,) = re.search(r"max \|ours - reference\| (\S+)", out).groups()
    assert float(diff) <= 1e-6, "longitudinal ComBat differs from its reference"
    (ratio,) = re.search(r"time ours / reference: median " + NUM, out).groups()
    _positive([float(ratio)], "time ratio")
    rows = re.findall(r"(raw|ComBat|longitudinal): site-mean spread left " + NUM
                      + r"; within-subject sd max/min over sites " + NUM
                      + r"; slope RMS error " + NUM, out)
    assert [r[0] for r in rows] == ["raw", "ComBat", "longitudinal"], out[-2000:]
    _positive([float(v) for r in rows for v in r[1:]], "cohort figures")


def check_residual_site(out):
    assert "method: harmonizer refitted" in out
    if importlib.util.find_spec("neuroHarmonize") is None:
        assert "neuroHarmonize is not installed" in out
    floors = re.findall(r"^  floor: (.+?)\s+" + NUM + r" \(\d seeds ", out, re.M)
    assert [f[0] for f in floors] == [
        "Gaussian noise, raw", "Gaussian noise, ComBat",
        "Gaussian noise, across-site EB", "sites permuted, raw",
        "sites permuted, ComBat",
        "sites permuted, QuantileComBat",
        "sites permuted, pooling, across-site EB",
        "sites permuted, QuantileComBat, across-site EB",
        "sites permuted, prototype, principal axes"], out[-2000:]
    rows = re.findall(r"^  (raw|ComBat|CovBat|neuroHarmonize|QuantileComBat, "
                      r"pooling only|QuantileComBat, pooling, across-site EB|"
                      r"QuantileComBat, across-site EB|"
                      r"QuantileComBat \(ours\))\s+" + NUM
                      + r" \(chance " + NUM, out, re.M)
    names = [r[0] for r in rows]
    assert names[:3] == ["raw", "ComBat", "CovBat"], out[-2000:]
    assert names[-3:] == ["QuantileComBat, pooling, across-site EB",
                          "QuantileComBat, across-site EB",
                          "QuantileComBat (ours)"], out[-2000:]
    for _, value, chance in rows + [(n, v, "0.5") for n, v in floors]:
        assert 0.0 <= float(value) <= 1.0 and 0.0 < float(chance) < 1.0
    assert re.search(r"ABIDE ours / ComBat: " + NUM + " / " + NUM, out)
    assert re.search(r"prototype: across-site EB on principal axes\s+" + NUM
                     + r" \(\d split seeds " + NUM + "-" + NUM
                     + r"\); forest \(split seed 0\) " + NUM, out), out[-2000:]
    forest = re.findall(r"^  forest, (.+?)\s+" + NUM + r" \[", out, re.M)
    assert [f[0] for f in forest][:3] == ["raw", "ComBat", "CovBat"], out[-2000:]
    assert forest[-1][0] == "QuantileComBat (ours)", out[-2000:]
    assert all(0.0 <= float(v) <= 1.0 for _, v in forest)
    for label in ("site-constant metrics", "others"):
        assert re.search(r"ComBat, the \d+ " + label + r"\s+" + NUM
                         + r" \(\d split seeds", out), label
    assert re.search(r"ComBat, non-parametric EB, all metrics\s+" + NUM, out)
    assert re.search(r"within-site correlation of the \d+ others: \d+ of \d+ "
                     r"principal axes with variance below 1e-3 of the largest, "
                     r"\d+ below 1e-2", out), out[-2000:]
    prior = re.findall(r"across-site prior, (real sites|sites permuted): location "
                       r"estimate kept, median over site/metric pairs " + NUM
                       + r"; no correction \(tau2 = 0\) on (\d+) of (\d+) metrics",
                       out)
    assert [p[0] for p in prior] == ["real sites", "sites permuted"], out[-2000:]
    assert all(0 <= float(k) <= 1 and int(a) <= int(b) for _, k, a, b in prior)
    r2 = re.findall(r"^  (\S.*?)\s+age R2 (-?[\d.]+)  site " + NUM, out, re.M)
    assert [r[0] for r in r2][:3] == ["raw", "ComBat", "CovBat"], out[-2000:]
    assert all(-1 <= float(v) <= 1 for _, v, _ in r2)
    assert re.search(r"age R2 ours - ComBat: [-+][\d.]+", out), out[-2000:]


def check_filters(out):
    families = re.search(r"families: ([a-z, ]+)", out).group(1).strip().split(", ")
    assert {"mean", "log"} <= set(families), out[-2000:]
    if "mirp not importable" in out:  # numpy-1 leg: our timings only
        rows = re.findall(r"(filter|extractor) +(\S+) +ours +" + NUM + "s", out)
        assert len(rows) == 2 * 2 * len(families), out[-2000:]
        _positive([float(r[2]) for r in rows], "our times")
        return
    rows = re.findall(r"filter (\S+) +ours +" + NUM + r"s  mirp +" + NUM
                      + r"s  ours/mirp " + NUM + r"  max\|diff\|/range (\S+)", out)
    assert [r[0] for r in rows] == families * 2, out[-2000:]
    _positive([float(v) for r in rows for v in r[1:4]], "filter times")
    # the same response as mirp's within IBSI-2's 1 % of the range; the LoG
    # samples mirp's kernel formula, so to float rounding (docs/user_guide/filters.rst)
    assert all(float(r[4]) <= 0.01 for r in rows), rows
    assert all(float(r[4]) <= 1e-12 for r in rows if r[0] == "log"), rows
    rows = re.findall(r"extractor (\S+) +ours +" + NUM + r"s  mirp +" + NUM
                      + r"s  ours/mirp " + NUM + r"  stats max rel diff (\S+)", out)
    assert [r[0] for r in rows] == families * 2, out[-2000:]
    _positive([float(v) for r in rows for v in r[1:4]], "extractor times")
    assert all(float(r[4]) <= 0.01 for r in rows), rows
    assert re.search(r"filter ours/mirp over cases and families: median " + NUM, out)


CHECKS = {
    "bench_cache.py": check_cache,
    "bench_import.py": check_import,
    "bench_new_sites.py": check_new_sites,
    "bench_combat.py": check_combat,
    "bench_gpu.py": check_gpu,
    "bench_ibsi_families.py": check_ibsi_families,
    "bench_ibsi_texture.py": check_ibsi_texture,
    "bench_patches.py": check_patches,
    "bench_proxy.py": check_proxy,
    "bench_radiomics.py": check_radiomics,
    "bench_read.py": check_read,
    "bench_target_protection.py": check_target_protection,
    "bench_torchio.py": check_torchio,
    "bench_voxel.py": check_voxel,
    "bench_longitudinal.py": check_longitudinal,
    "bench_residual_site.py": check_residual_site,


    "bench_filters.py": check_filters,
}


#: Fewer rounds in the smoke run than a measurement needs: the checks read the
#: printed structure, not the figures (CI runs the suite twice on two cores).
SMOKE_ARGS = {
    "bench_gpu.py": ["--repeat", "1"],
    "bench_patches.py": ["--repeat", "2"],
}


def test_every_benchmark_is_listed():
    assert sorted(p.name for p in BENCHMARKS.glob("bench_*.py")) == sorted(CHECKS)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(CHECKS))
def test_benchmark_quick_run(script):
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick",
         *SMOKE_ARGS.get(script, [])],
        capture_output=True,
        text=True,
        timeout=600,
        # the package of this checkout, not whichever one is installed
        env={**os.environ, "PYTHONPATH": str(BENCHMARKS.parent)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    CHECKS[script](result.stdout)


@pytest.mark.slow
def test_bench_gpu_two_device_path_runs_on_the_cpu():
    # no GPU in CI: the CPU stands in for CUDA, so that the GPU branch runs
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_gpu.py"), "--quick", "--dry-gpu",
         "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(BENCHMARKS.parent)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    check_gpu(result.stdout)
    # identical devices: identical deterministic transforms and probabilities
    assert set(re.findall(r"max \|cuda - cpu\| (?:probability )?(\S+)",
                          result.stdout)) == {"0.00e+00"}
