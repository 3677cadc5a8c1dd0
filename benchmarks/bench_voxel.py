"""VoxelComBatHarmonizer against neuroHarmonize's voxel path: time, peak memory.

Images of a synthetic multi-site cohort
(:func:`sklearn_medprep.datasets.make_voxel_cohort`: 4 sites, age covariate,
known voxel-wise site effects) are written as NIfTI files; the table of paths
is what both tools read. Each tool runs in its own subprocess (fresh
interpreter), after a warm-up on a tiny cohort:

* neuroHarmonize: ``createMaskNIFTI`` (threshold 0), ``flattenNIFTIs``,
  ``harmonizationLearn`` on the flattened ``n x p`` float64 array,
  ``applyModelNIFTIs`` writing the harmonized images;
* ours: ``VoxelComBatHarmonizer(covariates=["age"], output_dir=...)``:
  ``fit`` (mask learned the same way) then ``transform``.

Peak memory is the peak resident set size of the subprocess above its size
before the run (SimpleITK/nibabel buffers are not seen by tracemalloc), given
as a multiple of one image set: ``n x p x 8`` bytes, the flattened float64
array neuroHarmonize holds. The outputs are compared voxel by voxel (``max
|diff|``). Then a cohort neuroHarmonize cannot hold in this machine's memory is
harmonized by ours alone (mask given as a file), with its peak printed.

Usage::

    python benchmarks/bench_voxel.py --quick   # 60 subjects x ~4,000 voxels
    python benchmarks/bench_voxel.py           # 300 x ~500,000, then 2000 x ~500,000
"""

import argparse
import contextlib
import importlib.util
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _rss_bytes():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak():
    """Reset the kernel's peak-RSS mark (Linux >= 4.0), so warm-up is not counted."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _peak_bytes():
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _run_nh(table, out, mask_file):
    from neuroHarmonize import harmonizationLearn
    from neuroHarmonize.harmonizationNIFTI import (
        applyModelNIFTIs,
        createMaskNIFTI,
        flattenNIFTIs,
    )

    paths = pd.DataFrame({"PATH": table["image"].to_numpy()})
    createMaskNIFTI(paths, threshold=0.0, output_path=mask_file)
    flat = flattenNIFTIs(paths, mask_file, str(Path(out) / "flat.npy"))
    covars = table[["site", "age"]].rename(columns={"site": "SITE"})
    covars = covars.reset_index(drop=True)
    model, _ = harmonizationLearn(flat, covars)
    del flat
    new = [str(Path(out) / f"{i}_harmonized.nii.gz") for i in table.index]
    paths["PATH_NEW"] = new
    applyModelNIFTIs(covars, model, paths, mask_file)
    return new


def _run_ours(table, out, mask_file, suffix):
    from sklearn_medprep import VoxelComBatHarmonizer

    combat = VoxelComBatHarmonizer(
        covariates=["age"],
        mask=mask_file,
        fill_outside=0.0,
        output_dir=out,
        output_suffix=suffix,
        scratch_dir=out,
    )
    return combat.fit_transform(table)["image"].tolist()


def worker(args):
    """One tool on one cohort, in this fresh process; prints a JSON line."""
    table = pd.read_csv(args.table, index_col=0)
    tiny = pd.read_csv(args.tiny, index_col=0)
    out = Path(args.out)
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warm = out / "warm"
        warm.mkdir(parents=True)
        warm_mask = str(warm / "mask.nii.gz") if args.worker == "nh" else None
        if args.worker == "nh":
            _run_nh(tiny, warm, warm_mask)
        else:
            _run_ours(tiny, warm, None, args.suffix)
        shutil.rmtree(warm)
        if not _reset_peak():
            raise RuntimeError("cannot reset the peak RSS (/proc/self/clear_refs)")
        base = _rss_bytes()
        start = time.perf_counter()
        if args.worker == "nh":
            files = _run_nh(table, out, str(out / "mask.nii.gz"))
        else:
            files = _run_ours(table, out, args.mask, args.suffix)
        seconds = time.perf_counter() - start
    print(
        json.dumps(
            {"seconds": seconds, "peak": _peak_bytes() - base, "files": files}
        )
    )


def _spawn(tool, table, tiny, out, mask=None, suffix=".nii.gz"):
    cmd = [
        sys.executable, __file__, "--worker", tool, "--table", table, "--tiny", tiny,
        "--out", out, "--suffix", suffix,
    ]
    if mask is not None:
        cmd += ["--mask", mask]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{tool} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _cohort(folder, n, shape, seed):
    from sklearn_medprep.datasets import make_voxel_cohort

    sizes = [n // 4 + (k < n % 4) for k in range(4)]
    table, truth = make_voxel_cohort(
        n_subjects=n, n_sites=4, shape=shape, path=folder, site_sizes=sizes,
        suffix=".nii", random_state=seed,
    )
    file = str(Path(folder) / "table.csv")
    table.to_csv(file)
    return table, truth, file


def _read(file):
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(sitk.ReadImage(str(file))).astype(np.float64)


def compare(root, n, shape):
    """Both tools on one cohort; prints time and memory ratios and max|diff|."""
    _, _, tiny = _cohort(root / "tiny", 16, (6, 7, 5), 1)
    table, truth, file = _cohort(root / "data", n, shape, 0)
    p = int(truth.brain.sum())
    set_bytes = n * p * 8
    print(f"\n== {n} subjects x {p:,} voxels (grid {shape}), one image set "
          f"(n x p float64) = {set_bytes / 2**20:.0f} MiB ==")
    res = {}
    for tool in ("nh", "ours"):
        out = root / f"out_{tool}"
        out.mkdir()
        res[tool] = _spawn(tool, file, tiny, str(out))
        print(f"{tool:>5}: {res[tool]['seconds']:8.1f} s, peak "
              f"{res[tool]['peak'] / 2**20:8.0f} MiB = "
              f"{res[tool]['peak'] / set_bytes:5.2f} x the image set")
    pairs = [(_read(a), _read(b)) for a, b in zip(res["nh"]["files"][:5],
                                                   res["ours"]["files"][:5])]
    diff = max(float(np.abs(a - b).max()) for a, b in pairs)
    scale = max(float(np.abs(a).max()) for a, _ in pairs)
    print(f"time ratio neuroHarmonize/ours: "
          f"{res['nh']['seconds'] / res['ours']['seconds']:.2f}x; peak memory "
          f"ratio neuroHarmonize/ours: {res['nh']['peak'] / res['ours']['peak']:.2f}x")
    print(f"max|diff| of the harmonized images (float32 files): {diff:.2e}")
    print(f"max rel diff {diff / scale:.2e} (first 5 images)")
    for tool in ("nh", "ours"):
        shutil.rmtree(root / f"out_{tool}")
    shutil.rmtree(root / "data")
    return res["nh"]["peak"] / set_bytes


def large(root, n, shape, nh_multiple):
    """Ours alone on a cohort whose flattened array neuroHarmonize cannot hold."""
    import SimpleITK as sitk

    _, _, tiny = _cohort(root / "tiny2", 16, (6, 7, 5), 1)
    start = time.perf_counter()
    table, truth, file = _cohort(root / "big", n, shape, 2)
    written = time.perf_counter() - start
    p = int(truth.brain.sum())
    mask = sitk.GetImageFromArray(truth.brain.astype(np.uint8))
    mask.CopyInformation(sitk.ReadImage(table["image"].iloc[0]))
    mask_file = str(root / "big_mask.nii.gz")
    sitk.WriteImage(mask, mask_file)
    set_bytes = n * p * 8
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    print(f"\n== {n} subjects x {p:,} voxels: the flattened float64 array alone is "
          f"{set_bytes / 2**30:.1f} GiB; at its measured {nh_multiple:.2f} x, "
          f"neuroHarmonize would need {nh_multiple * set_bytes / 2**30:.0f} GiB "
          f"(machine memory {mem / 2**30:.0f} GiB); {n} files written in "
          f"{written:.0f} s ==")
    out = root / "big_out"
    out.mkdir()
    res = _spawn("ours", file, tiny, str(out), mask=mask_file, suffix=".nii")
    print(f" ours: {res['seconds']:8.1f} s, peak {res['peak'] / 2**20:.0f} MiB = "
          f"{res['peak'] / set_bytes:.3f} x the image set; "
          f"{len(res['files'])} harmonized images written")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", choices=["nh", "ours"])
    parser.add_argument("--table")
    parser.add_argument("--tiny")
    parser.add_argument("--out")
    parser.add_argument("--mask")
    parser.add_argument("--suffix", default=".nii.gz")
    parser.add_argument("--compare-n", type=int, default=300)
    parser.add_argument("--large-n", type=int, default=2000)
    parser.add_argument("--scratch", default=None)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    root = Path(tempfile.mkdtemp(prefix="bench-voxel-", dir=args.scratch))
    has_nh = importlib.util.find_spec("neuroHarmonize") is not None
    if not has_nh:
        print("neuroHarmonize is not installed (pip install "
              "'sklearn-medprep[neuroharmonize]' on numpy < 2): comparison skipped, "
              "ours alone; neuroHarmonize's need assumed 5.61 x the image set "
              "(measured with it)")
    shape = (24, 22, 20) if args.quick else (112, 112, 91)  # ~510,000 brain voxels
    compare_n, large_n = (60, 80) if args.quick else (args.compare_n, args.large_n)
    try:
        multiple = compare(root, compare_n, shape) if has_nh else 5.61
        large(root, large_n, shape, multiple)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
