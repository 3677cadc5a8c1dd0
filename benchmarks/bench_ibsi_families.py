"""IBSI-1 families the library adds to ``settings="ibsi"``: time against PyRadiomics.

``RadiomicsExtractor(settings="ibsi")`` runs PyRadiomics with the preset's
settings and then the library's IBSI-1 families on the same image and ROI
(``sklearn_medprep.radiomics._ibsi_families.family_values``: morphology, local
intensity + statistics + intensity-volume histogram, intensity histogram,
texture). This prints the time those families add, against the time of
PyRadiomics' own extraction with the preset's settings
(``RadiomicsFeatureExtractor(ibsi_settings()).execute``, shape + first order +
every 3D texture class, bin width 1), on the same image and mask, in the same
process.

Data: PyRadiomics' ``brain1`` test case (``../shared/data/pyradiomics``, 4,137
ROI voxels, 666 grey levels at bin width 1: PyRadiomics takes ~25 s CPU per
call); ``--case lung1`` for lung1. Without the shared data a synthetic image of
the same kind stands in; ``--quick`` (CI) runs a small synthetic case (~500 ROI
voxels, ~30 grey levels), said in the output.

Method: BLAS/OpenMP and SimpleITK pinned to one thread (environment,
threadpoolctl, SimpleITK's global default); one warm-up call of each; then
rounds alternating which tool goes first; each call timed in process CPU time
(the machine is shared) and wall time; medians over rounds. Ours is timed from
the SimpleITK images (crop, discretisation, every family). Also printed: our
CPU time per family (median) and whether every value is finite.

Usage::

    python benchmarks/bench_ibsi_families.py --quick   # small synthetic, 2 rounds
    python benchmarks/bench_ibsi_families.py           # brain1, 5 rounds (~10 min)
"""

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sklearn_medprep.radiomics._discretisation import split_option  # noqa: E402
from sklearn_medprep.radiomics._ibsi import ibsi_settings  # noqa: E402
from sklearn_medprep.radiomics._ibsi_families import (  # noqa: E402
    FAMILIES,
    discretise,
    family_values,
)
from sklearn_medprep.radiomics._ibsi_intensity import LOCAL_RADIUS_MM  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "pyradiomics"


def _load(case, quick):
    image_file = DATA / f"{case}_image.nrrd"
    if image_file.is_file() and not quick:
        image = sitk.ReadImage(str(image_file))
        mask = sitk.ReadImage(str(DATA / f"{case}_label.nrrd"))
        return image, mask, f"PyRadiomics {case} (../shared/data/pyradiomics)"
    rng = np.random.default_rng(0)
    from scipy import ndimage

    array = ndimage.gaussian_filter(rng.normal(size=(25, 64, 64)), 1.5)
    array = (800 + (40 if quick else 2000) * array).astype(np.int16)
    zz, yy, xx = np.mgrid[:25, :64, :64]
    small = 0.5 if quick else 1.0  # --quick: a ROI of ~500 voxels, ~30 levels
    roi = (((zz - 12) / 6) ** 2 + ((yy - 32) / 15) ** 2 + ((xx - 30) / 13) ** 2
           < small ** 2)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.78, 0.78, 6.5))
    mask = sitk.GetImageFromArray(roi.astype(np.uint8))
    mask.CopyInformation(image)
    why = "--quick" if quick else "../shared/data/pyradiomics absent"
    return image, mask, f"synthetic ({why})"


def _timed(fn):
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    return time.process_time() - cpu, time.perf_counter() - wall, result


def _family_inputs(image, mask):
    """The arrays family_values builds (for the per-family times)."""
    labels = sitk.GetArrayFromImage(mask)
    spacing = tuple(float(s) for s in reversed(image.GetSpacing()))
    index = np.argwhere(labels == 1)
    margins = [int(LOCAL_RADIUS_MM // s) for s in spacing]
    box = tuple(slice(max(lo - m, 0), hi + m + 1)
                for lo, hi, m in zip(index.min(0), index.max(0), margins))
    intensities = sitk.GetArrayFromImage(image)[box].astype(float)
    roi = labels[box] == 1
    return {"intensities": intensities, "grey": discretise(intensities, roi, 1.0)}, \
        roi, spacing


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a small synthetic case, 2 rounds")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--case", default="brain1", help="brain1 (default), lung1")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 5)
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    image, mask, source = _load(args.case, args.quick)
    mask = sitk.Cast(mask, sitk.sitkUInt32)
    # PyRadiomics' own extractor with the preset's parameters (binWidth 1; the
    # library's "no discretisation" option is not a PyRadiomics parameter)
    extractor = RadiomicsFeatureExtractor(split_option(ibsi_settings())[0])
    inputs, roi, spacing = _family_inputs(image, mask)
    print(f"data: {source}; {int(roi.sum())} ROI voxels, "
          f"{len(np.unique(inputs['grey'][roi]))} grey levels (bin width 1, the "
          "preset's)")
    print(f"method: {rounds} rounds alternating which tool goes first, after one "
          "warm-up each; BLAS/OpenMP and SimpleITK on one thread; process CPU time "
          "and wall time per call; medians over rounds")
    with threadpool_limits(1):
        reference = extractor.execute(image, mask, label=1)
        ours = family_values(image, mask, 1, 1.0)
        times = {"ours": [], "pyradiomics": []}
        runs = {"ours": lambda: family_values(image, mask, 1, 1.0),
                "pyradiomics": lambda: extractor.execute(image, mask, label=1)}
        for r in range(rounds):
            order = ["ours", "pyradiomics"][:: 1 if r % 2 == 0 else -1]
            for tool in order:
                cpu, wall, _ = _timed(runs[tool])
                times[tool].append((cpu, wall))
        parts = {}
        for function, kind, _ in FAMILIES:
            parts[function.__name__] = statistics.median(
                _timed(lambda f=function, k=kind: f(inputs[k], roi, spacing))[0]
                for _ in range(rounds))
    finite = all(np.isfinite(value) for _, value in ours)
    print(f"all {len(ours)} of our features finite: {finite}")
    median = {tool: [statistics.median(t[k] for t in values) for k in (0, 1)]
              for tool, values in times.items()}
    print(f"ours ({len(ours)} features, from the images): CPU "
          f"{median['ours'][0] * 1e3:.1f} ms, wall {median['ours'][1] * 1e3:.1f} ms")
    print(f"PyRadiomics execute, preset settings ({len(reference)} features): CPU "
          f"{median['pyradiomics'][0] * 1e3:.1f} ms, wall "
          f"{median['pyradiomics'][1] * 1e3:.1f} ms")
    cpu_ratios = [o[0] / p[0] for o, p in zip(times["ours"], times["pyradiomics"])
                  if p[0] > 0]
    print(f"added CPU time ours/PyRadiomics: median "
          f"{median['ours'][0] / median['pyradiomics'][0]:.2g}x "
          f"(rounds {min(cpu_ratios):.2g}-{max(cpu_ratios):.2g}); wall time ratio "
          f"{median['ours'][1] / median['pyradiomics'][1]:.2g}x")
    print("ours per family (CPU, median): " + ", ".join(
        f"{name} {seconds * 1e3:.1f} ms" for name, seconds in parts.items()))


if __name__ == "__main__":
    main()
