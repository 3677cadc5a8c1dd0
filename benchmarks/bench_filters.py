"""IBSI-2 filters: sklearn_medprep.filters against mirp, the IBSI reference tool.

On brain1 and lung1 (PyRadiomics' test images, ../shared/data/pyradiomics),
resampled once to 1 mm isotropic (SimpleITK, linear; mask nearest neighbour:
mirp's filters refuse anisotropic grids, and its LoG takes one sigma in voxels
for every axis), for each filter family that ``filter_image`` covers:

1. **filter**: our ``filter_image`` on the whole array against mirp's own filter
   class (``mirp._imagefilters``, the object its workflow builds from the same
   settings) on the same array; values compared as max |ours - mirp| over
   mirp's response range;
2. **extractor** (the input users pass: image and mask files): our
   ``RadiomicsExtractor`` with the filter as an ``"IBSI2"`` image type
   (firstorder statistics of the response map in the ROI) against mirp's
   ``extract_features`` with the same filter (``response_map_feature_families=
   "statistics"``, no base features) on the same NIfTI files; values compared
   as the largest relative difference of mean, max and min.

Method: CPU time (``time.process_time``) of each call, rounds alternating ours
and mirp, median over rounds (the extractor rows after one untimed call of
each tool: settings validation, imports, mirp's first-call set-up);
BLAS/OpenMP threads pinned to 1 (environment and threadpoolctl); ratios
ours / mirp (below 1: ours faster). Without mirp (the numpy-1 leg) the mirp
columns are skipped with a note.

Usage: python benchmarks/bench_filters.py [--quick] [--rounds N]
(--quick: a 40-voxel crop around each ROI, one round.)
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import SimpleITK as sitk  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from sklearn_medprep import RadiomicsExtractor  # noqa: E402
from sklearn_medprep.filters import filter_image  # noqa: E402
from sklearn_medprep.filters._dispatch import FILTER_FAMILIES  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MEDPREP_SHARED_DATA") or ROOT.parent / "shared" / "data")
DATA = SHARED / "pyradiomics"
CASES = ("brain1", "lung1")

# our configuration, mirp's settings and mirp's filter class, per family
# (the phase-2 parameters of configurations.json; Gabor by slice)
FILTERS = {
    "mean": (
        {"family": "mean", "kernel_size_voxels": 5, "boundary": "reflect"},
        {"filter_kernels": "mean", "mean_filter_kernel_size": 5},
        "mean.MeanFilter",
    ),
    "log": (
        {"family": "laplacian_of_gaussian", "sigma_mm": 1.5,
         "kernel_truncate_sigmas": 4.0, "boundary": "reflect"},
        {"filter_kernels": "laplacian_of_gaussian",
         "laplacian_of_gaussian_sigma": 1.5,
         "laplacian_of_gaussian_kernel_truncate": 4.0},
        "laplacian_of_gaussian.LaplacianOfGaussianFilter",
    ),
    "laws": (
        {"family": "laws", "kernel": "L5E5E5", "energy_map": True,
         "energy_distance_voxels": 7, "boundary": "reflect",
         "rotation_invariance": True, "pooling": "max"},
        {"filter_kernels": "laws", "laws_kernel": "L5E5E5", "laws_delta": 7,
         "laws_compute_energy": True, "laws_rotation_invariance": True,
         "laws_pooling_method": "max"},
        "laws.LawsFilter",
    ),
    "gabor": (
        {"family": "gabor", "sigma_mm": 5.0, "lambda_mm": 2.0, "gamma": 1.5,
         "theta_deg": 0.0, "theta_step_deg": 22.5, "response": "modulus",
         "boundary": "reflect", "by_slice": True, "rotation_invariance": True,
         "pooling": "mean"},
        {"filter_kernels": "gabor", "gabor_sigma": 5.0, "gabor_lambda": 2.0,
         "gabor_gamma": 1.5, "gabor_theta": 0.0, "gabor_theta_step": 22.5,
         "gabor_response": "modulus", "gabor_rotation_invariance": True,
         "gabor_pooling_method": "mean", "by_slice": True},
        "gabor.GaborFilter",
    ),
    "wavelet": (
        {"family": "separable_wavelet", "wavelet": "db3", "filter_set": "LLH",
         "decomposition_level": 1, "boundary": "reflect",
         "rotation_invariance": True, "pooling": "mean"},
        {"filter_kernels": "separable_wavelet", "separable_wavelet_families": "db3",
         "separable_wavelet_set": "LLH", "separable_wavelet_decomposition_level": 1,
         "separable_wavelet_rotation_invariance": True,
         "separable_wavelet_pooling_method": "mean"},
        "separable_wavelet.SeparableWaveletFilter",
    ),
    "simoncelli": (
        {"family": "nonseparable_wavelet", "wavelet": "simoncelli",
         "decomposition_level": 1, "response": "real", "boundary": "wrap"},
        {"filter_kernels": "nonseparable_wavelet",
         "nonseparable_wavelet_families": "simoncelli",
         "nonseparable_wavelet_decomposition_level": 1,
         "nonseparable_wavelet_response": "real"},
        "nonseparable_wavelet.NonseparableWaveletFilter",
    ),
}
STATS = {"Mean": "stat_mean", "Maximum": "stat_max", "Minimum": "stat_min"}


def _mirp():
    """mirp's modules, or None where it is not importable (numpy-1 leg)."""
    try:
        import mirp  # noqa: F401
        from mirp._imagefilters.generic import GenericFilter
    except ImportError:
        return None
    return GenericFilter


def load_case(name, quick):
    """The case resampled to 1 mm isotropic (cropped around the ROI if quick)."""
    image = sitk.ReadImage(str(DATA / f"{name}_image.nrrd"), sitk.sitkFloat32)
    mask = sitk.ReadImage(str(DATA / f"{name}_label.nrrd"), sitk.sitkUInt8)
    size = [int(round(n * s)) for n, s in zip(image.GetSize(), image.GetSpacing())]
    out = []
    for item, interpolator in ((image, sitk.sitkLinear),
                               (mask, sitk.sitkNearestNeighbor)):
        out.append(sitk.Resample(item, size, sitk.Transform(), interpolator,
                                 item.GetOrigin(), (1.0, 1.0, 1.0),
                                 item.GetDirection(), 0, item.GetPixelID()))
    image, mask = out
    if quick:
        array = sitk.GetArrayViewFromImage(mask) == 1
        centre = [int(np.mean(np.flatnonzero(array.any(axis=tuple(
            a for a in range(3) if a != axis))))) for axis in (2, 1, 0)]
        index = tuple(slice(max(c - 20, 0), min(c + 20, n))
                      for c, n in zip(centre, image.GetSize()))
        image, mask = image[index], mask[index]
    return image, mask


def _cpu(function, *args):
    start = time.process_time()
    value = function(*args)
    return time.process_time() - start, value


def mirp_filter(family, array, spacing):
    """mirp's filter class of ``family`` on ``array`` (z, y, x), as its workflow."""
    import importlib

    from mirp._images.generic_image import GenericImage
    from mirp.settings.generic import SettingsClass

    _, settings, path = FILTERS[family]
    settings = dict(settings)
    by_slice = settings.pop("by_slice", False)
    module, cls = path.split(".")
    filter_class = getattr(importlib.import_module(f"mirp._imagefilters.{module}"),
                           cls)
    config = SettingsClass(by_slice=by_slice, boundary_condition="reflect",
                           response_map_feature_families="statistics", **settings)
    image = GenericImage(image_data=array, image_spacing=tuple(spacing),
                         image_origin=(0.0, 0.0, 0.0), image_orientation=np.eye(3),
                         image_dimensions=array.shape, separate_slices=by_slice,
                         image_modality="generic")
    (current,) = list(filter_class(image=image, settings=config,
                                   name=settings["filter_kernels"]).generate_object())
    return current.transform(image).get_voxel_grid().astype(np.float64)


def mirp_extract(families, image_file, mask_file):
    """mirp's statistics of each family's response map in the ROI (from files)."""
    from mirp import extract_features

    out = {}
    for family in families:
        settings = dict(FILTERS[family][1])
        by_slice = settings.pop("by_slice", False)
        table = extract_features(
            image=str(image_file), mask=str(mask_file), by_slice=by_slice,
            base_feature_families="none", response_map_feature_families="statistics",
            boundary_condition="reflect", **settings)[0]
        out[family] = {ours: float(table.filter(like=tag).iloc[0, 0])
                       for ours, tag in STATS.items()}
    return out


def our_extract(families, image_file, mask_file):
    entries = [{**FILTERS[f][0], "name": f} for f in families]
    settings = {"imageType": {"IBSI2": entries},
                "featureClass": {"firstorder": list(STATS)}}
    table = pd.DataFrame({"image": [str(image_file)], "mask": [str(mask_file)]})
    row = RadiomicsExtractor(settings=settings).fit_transform(table).iloc[0]
    return {f: {stat: float(row[f"ibsi2-{f}_firstorder_{stat}"]) for stat in STATS}
            for f in families}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    if not DATA.is_dir():
        print(f"{DATA} absent: skipping")
        return
    generic_filter = _mirp()
    if generic_filter is None:
        print("mirp not importable (numpy-1 stack): mirp columns skipped")
    else:
        # mirp's isotropy check raises on a missing message method; the images
        # here are isotropic, the check is skipped so that crops stay accepted
        generic_filter.check_isotropic_image = lambda self, image: None
    families = [f for f in FILTERS if FILTERS[f][0]["family"] in FILTER_FAMILIES]
    skipped = [f for f in FILTERS if f not in families]
    print(f"method: CPU time, {rounds} round(s) alternating ours/mirp, median "
          "(extractor: after one untimed call of each tool); threads pinned to 1; "
          "images resampled to 1 mm isotropic"
          + (" and cropped to 40 voxels around the ROI (quick)" if args.quick else ""))
    print(f"families: {', '.join(families)}"
          + (f" (not in filter_image yet: {', '.join(skipped)})" if skipped else ""))
    warnings.simplefilter("ignore")  # mirp's own user warnings
    logging.disable(logging.INFO)  # mirp's progress messages
    ratios = {"filter": [], "extractor": []}
    with threadpool_limits(1), tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            image, mask = load_case(case, args.quick)
            array = sitk.GetArrayFromImage(image).astype(np.float64)
            spacing = image.GetSpacing()[::-1]
            print(f"\n{case}: {array.shape[::-1]} voxels (x, y, z) at 1 mm, ROI "
                  f"{int((sitk.GetArrayViewFromImage(mask) == 1).sum())} voxels")
            for family in families:
                config = FILTERS[family][0]
                ours, theirs = [], []
                for _ in range(rounds):
                    t, response = _cpu(filter_image, array, spacing, config)
                    ours.append(t)
                    if generic_filter is not None:
                        t, reference = _cpu(mirp_filter, family, array, spacing)
                        theirs.append(t)
                line = (f"  filter {family:<10s} ours {statistics.median(ours):7.3f}s")
                if theirs:
                    ratio = statistics.median(ours) / statistics.median(theirs)
                    span = float(reference.max() - reference.min()) or 1.0
                    diff = float(np.abs(response - reference).max()) / span
                    ratios["filter"].append(ratio)
                    line += (f"  mirp {statistics.median(theirs):7.3f}s  ours/mirp "
                             f"{ratio:.3f}  max|diff|/range {diff:.1e}")
                print(line)
            image_file = Path(tmp) / f"{case}_image.nii.gz"
            mask_file = Path(tmp) / f"{case}_mask.nii.gz"
            sitk.WriteImage(image, str(image_file))
            sitk.WriteImage(mask, str(mask_file))
            for family in families:
                # one untimed call each first: settings validation, imports
                our_extract([family], image_file, mask_file)
                if generic_filter is not None:
                    mirp_extract([family], image_file, mask_file)
                ours, theirs = [], []
                for _ in range(rounds):
                    t, mine = _cpu(our_extract, [family], image_file, mask_file)
                    ours.append(t)
                    if generic_filter is not None:
                        t, other = _cpu(mirp_extract, [family], image_file,
                                            mask_file)
                        theirs.append(t)
                line = f"  extractor {family:<7s} ours {statistics.median(ours):7.3f}s"
                if theirs:
                    ratio = statistics.median(ours) / statistics.median(theirs)
                    ratios["extractor"].append(ratio)
                    worst = max(abs(mine[family][s] - other[family][s])
                                / max(abs(other[family][s]), 1e-12) for s in STATS)
                    line += (f"  mirp {statistics.median(theirs):7.3f}s  ours/mirp "
                             f"{ratio:.3f}  stats max rel diff {worst:.1e}")
                print(line)
    for what, values in ratios.items():
        if values:
            print(f"{what} ours/mirp over cases and families: median "
                  f"{statistics.median(values):.3f}, max {max(values):.3f} "
                  "(goal: <= 1)")


if __name__ == "__main__":
    main()
