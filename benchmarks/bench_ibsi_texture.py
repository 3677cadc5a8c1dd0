"""IBSI-1 texture features PyRadiomics lacks: time against PyRadiomics' GLCM + GLDM.

``texture_features`` (``sklearn_medprep.radiomics._ibsi_texture``) computes the
21 IBSI-1 texture features PyRadiomics has no counterpart for: the 16 GLDZM
features, GLCM sum variance and dissimilarity, and three NGLDM features. To
get them it computes the whole GLCM (13 directions) and NGLDM families and the
GLDZM. The reference cost is what a PyRadiomics user pays for the nearest
families: ``RadiomicsFeatureExtractor.execute`` with only ``glcm`` and
``gldm`` enabled (3D, distance 1, symmetric GLCM, ``gldm_a = 0``), on the same
image and mask, in the same process.

Data: PyRadiomics' ``brain1`` test case (``../shared/data/pyradiomics``,
4,137 ROI voxels), discretised with a fixed bin width of 25 as PyRadiomics
does (bins counted from ``min - min % 25``; the script checks that its levels
equal PyRadiomics' ``imageoperations.binImage`` output). Without the shared
data a synthetic image of the same kind stands in (said in the output).

Method: BLAS/OpenMP and SimpleITK pinned to one thread (environment,
threadpoolctl, SimpleITK's global default);
one warm-up call of each; then rounds alternating which tool goes first; each
call timed in process CPU time (the machine is shared) and wall time; medians
over rounds. Ours is timed from the SimpleITK images: copy of the ROI's
bounding box, bin-width discretisation and ``texture_features``; PyRadiomics'
``execute`` also checks and crops the whole image, which dominates its time on
a large image with a small ROI (``--case lung1``). Also printed: the agreement
of our GLCM and NGLDM features with PyRadiomics' 23 GLCM and 14 GLDM ones on
this image (max relative difference); the features alone on the cropped ROI
(``texture_features`` on the discretised crop against PyRadiomics'
``RadiomicsGLCM`` + ``RadiomicsGLDM`` classes on PyRadiomics' own crop, which
discretise and build their matrices); and our time per family.

Usage::

    python benchmarks/bench_ibsi_texture.py --quick   # 3 rounds
    python benchmarks/bench_ibsi_texture.py           # 15 rounds
    python benchmarks/bench_ibsi_texture.py --case lung1  # another test case
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

from sklearn_medprep.radiomics._ibsi import PYRADIOMICS_FEATURE_MAP  # noqa: E402
from sklearn_medprep.radiomics._ibsi_texture import (  # noqa: E402
    glcm_features,
    gldzm_features,
    ngldm_features,
    texture_features,
)

DATA = REPO.parent / "shared" / "data" / "pyradiomics"
BIN_WIDTH = 25


def _load(case="brain1"):
    image_file = DATA / f"{case}_image.nrrd"
    if image_file.is_file():
        image = sitk.ReadImage(str(image_file))
        mask = sitk.ReadImage(str(DATA / f"{case}_label.nrrd"))
        return image, mask, f"PyRadiomics {case} (../shared/data/pyradiomics)"
    # a smooth random image with an ellipsoid ROI of about 4,000 voxels
    rng = np.random.default_rng(0)
    from scipy import ndimage

    array = ndimage.gaussian_filter(rng.normal(size=(25, 64, 64)), 1.5)
    array = (800 + 2000 * array).astype(np.int16)
    zz, yy, xx = np.mgrid[:25, :64, :64]
    roi = ((zz - 12) / 6) ** 2 + ((yy - 32) / 15) ** 2 + ((xx - 30) / 13) ** 2 < 1
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.78, 0.78, 6.5))
    mask = sitk.GetImageFromArray(roi.astype(np.uint8))
    mask.CopyInformation(image)
    return image, mask, "synthetic (../shared/data/pyradiomics absent)"


def _discretise(image, mask):
    """Fixed bin width as PyRadiomics: bins from ``min - min % width``, from 1."""
    # the ROI's bounding box, as PyRadiomics crops before its texture classes
    labels = sitk.GetArrayViewFromImage(mask)
    box = tuple(
        slice(where[0], where[-1] + 1)
        for where in (np.flatnonzero(labels.any(axis=other))
                      for other in ((1, 2), (0, 2), (0, 1)))
    )
    array = sitk.GetArrayViewFromImage(image)[box].astype(float)
    roi = labels[box] > 0
    low = array[roi].min()
    low -= low % BIN_WIDTH
    grey = np.zeros_like(array)
    grey[roi] = np.floor((array[roi] - low) / BIN_WIDTH) + 1
    return grey, roi, image.GetSpacing()[::-1]


def _ours(image, mask):
    grey, roi, spacing = _discretise(image, mask)
    return texture_features(grey, roi, spacing)


def _extractor():
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    extractor = RadiomicsFeatureExtractor(
        binWidth=BIN_WIDTH, force2D=False, distances=[1], symmetricalGLCM=True,
        weightingNorm=None, gldm_a=0, additionalInfo=False,
    )
    extractor.disableAllFeatures()
    extractor.enableFeaturesByName(glcm=[], gldm=[])
    return extractor


def _classes(image, mask):
    """PyRadiomics' GLCM and GLDM feature classes alone, on the cropped ROI."""
    from radiomics import glcm, gldm, imageoperations

    box, _ = imageoperations.checkMask(image, mask, label=1)
    image, mask = imageoperations.cropToTumorMask(image, mask, box)
    settings = {"binWidth": BIN_WIDTH, "distances": [1], "symmetricalGLCM": True,
                "weightingNorm": None, "gldm_a": 0, "force2D": False}

    def run():
        for cls in (glcm.RadiomicsGLCM, gldm.RadiomicsGLDM):
            features = cls(image, mask, **settings)
            features.enableAllFeatures()
            features.execute()

    return run


def _timed(fn):
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    return time.process_time() - cpu, time.perf_counter() - wall, result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--case", default="brain1",
                        choices=["brain1", "brain2", "breast1", "lung1", "lung2"],
                        help="PyRadiomics test case (default brain1)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 15)
    from radiomics import imageoperations

    # SimpleITK's own thread pool, which PyRadiomics' image operations use
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    image, mask, source = _load(args.case)
    extractor = _extractor()
    grey, roi, _ = _discretise(image, mask)
    # the discretisation is PyRadiomics' own
    full_roi = sitk.GetArrayFromImage(mask) > 0
    binned, _ = imageoperations.binImage(
        sitk.GetArrayFromImage(image), full_roi, binWidth=BIN_WIDTH)
    same = bool(np.array_equal(binned[full_roi], grey[roi]))
    print(f"data: {source}; {int(roi.sum())} ROI voxels, "
          f"{len(np.unique(grey[roi]))} grey levels (bin width {BIN_WIDTH}); "
          f"discretisation identical to PyRadiomics' binImage: {same}")
    print(f"method: {rounds} rounds alternating which tool goes first, after one "
          "warm-up each; BLAS/OpenMP and SimpleITK on one thread; process CPU "
          "time and wall time per call; medians over rounds")
    with threadpool_limits(1):
        reference = extractor.execute(image, mask)
        _ours(image, mask)
        times = {"ours": [], "pyradiomics": []}
        runs = {"ours": lambda: _ours(image, mask),
                "pyradiomics": lambda: extractor.execute(image, mask)}
        for r in range(rounds):
            order = ["ours", "pyradiomics"][:: 1 if r % 2 == 0 else -1]
            for tool in order:
                cpu, wall, _ = _timed(runs[tool])
                times[tool].append((cpu, wall))
        classes = _classes(image, mask)
        classes()
        crop_times = {"ours": [], "pyradiomics": []}
        crop_runs = {"ours": lambda: texture_features(grey, roi, (1, 1, 1)),
                     "pyradiomics": classes}
        for r in range(rounds):
            for tool in ["ours", "pyradiomics"][:: 1 if r % 2 == 0 else -1]:
                crop_times[tool].append(_timed(crop_runs[tool])[0])
        parts = {}
        for name, fn in (("GLDZM", gldzm_features), ("GLCM", glcm_features),
                         ("NGLDM", ngldm_features)):
            parts[name] = statistics.median(
                _timed(lambda fn=fn: fn(grey, roi))[0] for _ in range(rounds))
    ours = {**glcm_features(grey, roi), **ngldm_features(grey, roi)}
    rel = [
        abs(ours[ibsi] - float(reference[name])) / max(abs(float(reference[name])),
                                                       1e-300)
        for name, ibsi in PYRADIOMICS_FEATURE_MAP.items()
        if "_glcm_" in name or "_gldm_" in name
    ]
    print(f"our GLCM + NGLDM vs PyRadiomics' {len(rel)} GLCM + GLDM features on "
          f"this image: max rel diff {max(rel):.1e}")
    median = {tool: [statistics.median(t[k] for t in values) for k in (0, 1)]
              for tool, values in times.items()}
    print(f"ours (21 features, from the images): CPU {median['ours'][0] * 1e3:.1f} ms, "
          f"wall {median['ours'][1] * 1e3:.1f} ms")
    print(f"PyRadiomics glcm + gldm execute: CPU {median['pyradiomics'][0] * 1e3:.1f}"
          f" ms, wall {median['pyradiomics'][1] * 1e3:.1f} ms")
    cpu_ratios = [p[0] / o[0] for o, p in zip(times["ours"], times["pyradiomics"])
                  if o[0] > 0]
    print(f"CPU time ratio PyRadiomics/ours: median "
          f"{median['pyradiomics'][0] / median['ours'][0]:.2f}x "
          f"(rounds {min(cpu_ratios):.2f}-{max(cpu_ratios):.2f}); wall time ratio "
          f"{median['pyradiomics'][1] / median['ours'][1]:.2f}x")
    crop = {tool: statistics.median(values) for tool, values in crop_times.items()}
    print(f"features alone, on the cropped ROI: texture_features CPU "
          f"{crop['ours'] * 1e3:.1f} ms, PyRadiomics' RadiomicsGLCM + RadiomicsGLDM "
          f"classes CPU {crop['pyradiomics'] * 1e3:.1f} ms; CPU time ratio "
          f"PyRadiomics/ours {crop['pyradiomics'] / crop['ours']:.2f}x")
    print("ours per family (CPU, median): " + ", ".join(
        f"{name} {seconds * 1e3:.1f} ms" for name, seconds in parts.items()))


if __name__ == "__main__":
    main()
