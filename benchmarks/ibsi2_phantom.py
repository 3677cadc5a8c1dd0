"""IBSI-2 phase 1: filter_image against the reference response maps.

Prints, for every phase-1 test whose filter family the library covers, the worst
voxel |response - reference| against IBSI's tolerance (1% of the reference map's
range), the families not covered, and the scale of PyRadiomics' LoG against
IBSI's (the ratio of the two responses at the impulse phantom's peak). With
``--write`` writes docs/user_guide/ibsi2_phase1_table.rst.inc (the table of the
docs page, kept true by tests/filters/test_filters_ibsi2.py).

Usage: PYTHONPATH=. python benchmarks/ibsi2_phantom.py [--write] [--quick]
"""

import argparse
import os
import time
from pathlib import Path

from sklearn_medprep.filters._ibsi2 import ibsi2_phase1_rst, ibsi2_phase1_table

ROOT = Path(__file__).resolve().parents[1]
# ../shared/data next to the repository; MEDPREP_SHARED_DATA overrides it
SHARED = Path(os.environ.get("MEDPREP_SHARED_DATA") or ROOT.parent / "shared" / "data")
IBSI2 = SHARED / "ibsi2"
TABLE = ROOT / "docs" / "user_guide" / "ibsi2_phase1_table.rst.inc"


def log_scale_vs_pyradiomics(sigma_mm):
    """PyRadiomics' LoG response / IBSI's at the impulse phantom's peak voxel."""
    import numpy as np
    import SimpleITK as sitk
    from radiomics import imageoperations

    from sklearn_medprep import filter_image

    image = sitk.ReadImage(str(IBSI2 / "phantoms" / "impulse" / "image.nii.gz"),
                           sitk.sitkFloat64)
    array = sitk.GetArrayFromImage(image)
    mask = sitk.GetImageFromArray(np.ones(array.shape, np.uint8))
    mask.CopyInformation(image)
    (pyradiomics, _, _), = imageoperations.getLoGImage(image, mask, sigma=[sigma_mm])
    pyradiomics = sitk.GetArrayFromImage(pyradiomics)
    ours = filter_image(array, image.GetSpacing()[::-1],
                        {"family": "laplacian_of_gaussian", "sigma_mm": sigma_mm,
                         "boundary": "constant"})
    peak = np.unravel_index(np.argmax(array), array.shape)
    return float(pyradiomics[peak] / ours[peak]), float(
        sigma_mm / image.GetSpacing()[0]) ** 2


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write the docs table")
    parser.add_argument("--quick", action="store_true", help="same run (it is small)")
    args = parser.parse_args()
    if not IBSI2.is_dir():
        print(f"{IBSI2} absent: skipping")
        return
    start = time.process_time()
    table = ibsi2_phase1_table(IBSI2)
    seconds = time.process_time() - start
    covered = table[table["covered"]]
    print(f"IBSI-2 phase 1: {int(covered['passed'].sum())} of {len(covered)} covered "
          f"response maps within IBSI's criterion ({seconds:.1f} s CPU for all)")
    for test_id, row in covered.iterrows():
        print(f"  {test_id:7s} {row['family']:22s} max|diff| {row['max_abs_diff']:.3g}"
              f"  tolerance {row['tolerance']:.4g}  worst/tolerance "
              f"{row['worst_over_tolerance']:.2g}  "
              + ("pass" if row["passed"] else "FAIL"))
    absent = table[~table["covered"]]
    if len(absent):
        print(f"not covered ({len(absent)} maps): "
              + ", ".join(sorted(set(absent["family"]))))
    for sigma in (3.0, 5.0):
        ratio, nominal = log_scale_vs_pyradiomics(sigma)
        print(f"LoG sigma {sigma:g} mm: PyRadiomics / IBSI at the impulse peak "
              f"{ratio:.2f} (sigma_voxels^2 = {nominal:.2f})")
    if args.write:
        TABLE.write_text(ibsi2_phase1_rst(table))
        print(f"wrote {TABLE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
