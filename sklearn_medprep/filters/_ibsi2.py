"""IBSI-2 phase 1: every covered reference response map against :func:`filter_image`.

:func:`ibsi2_phase1_table` filters the IBSI-2 digital phantoms with each phase-1
test's configuration and applies IBSI's criterion (every voxel within 1% of the
reference map's range); ``docs/user_guide/ibsi2_phase1_table.rst.inc`` is its
output (:func:`ibsi2_phase1_rst`, written by ``benchmarks/ibsi2_phantom.py
--write``), and a test keeps the two equal.
"""

import json
from pathlib import Path

import numpy as np

from ..utils._rst import generated_table
from ._config import flat_config
from ._dispatch import FILTER_FAMILIES, filter_image

__all__ = [
    "ibsi2_phase1_rst",
    "ibsi2_phase1_table",
    "load_nifti_zyx",
]

def load_nifti_zyx(path):
    """Read a NIfTI file as a float64 (z, y, x) array and its (z, y, x) spacing.

    nibabel returns (x, y, z) = (i, j, k); the filters take SimpleITK's order.
    """
    import nibabel as nib

    image = nib.load(str(path))
    array = np.asarray(image.dataobj, dtype=np.float64)
    if array.ndim != 3:
        raise ValueError(f"{path}: expected a 3D image, got shape {array.shape}")
    spacing = tuple(float(s) for s in image.header.get_zooms()[:3])
    return array.transpose(2, 1, 0), spacing[::-1]


def _describe(config):
    family = config["family"]
    skip = {"family", "derived_for_2mm_voxels", "kernel_per_axis",
            "kernels_normalised_to_unit_l2_norm", "energy_window_voxels", "theta_rad",
            "theta_step_rad", "orientations_deg", "planes", "kernel_dimensionality"}
    parts = [f"{k}={v}" for k, v in config.items()
             if k not in skip and v is not None and v is not False]
    return f"{family}: " + ", ".join(parts)


def ibsi2_phase1_table(folder, ids=None):
    """Compare every covered IBSI-2 phase-1 response map with IBSI's reference.

    Parameters
    ----------
    folder : str or pathlib.Path
        The IBSI-2 data folder: ``configurations.json``, ``phantoms/`` and
        ``reference_response_maps/`` (see its README).
    ids : sequence of str, optional
        Test ids to run (default: all phase-1 tests).

    Returns
    -------
    pandas.DataFrame
        One row per test id (index ``test``), columns ``family``, ``filter``
        (the configuration in short), ``covered`` (the library has the family),
        ``max_abs_diff``, ``tolerance`` (1% of the reference map's range),
        ``worst_over_tolerance`` and ``passed`` (NaN / False where not covered).

    Examples
    --------
    A folder laid out as IBSI-2's, with one test whose reference map is
    scipy's mean filter (IBSI's is ``../shared/data/ibsi2``):

    >>> import json, tempfile
    >>> from pathlib import Path
    >>> import nibabel as nib
    >>> import numpy as np
    >>> from scipy import ndimage
    >>> from sklearn_medprep.filters import ibsi2_phase1_table
    >>> folder = Path(tempfile.mkdtemp())
    >>> phantom = np.random.default_rng(0).integers(0, 255, (9, 8, 7)).astype(float)
    >>> reference = ndimage.uniform_filter(phantom, 3, mode="reflect")
    >>> for name, array in [("phantom.nii.gz", phantom), ("ref.nii.gz", reference)]:
    ...     nib.save(nib.Nifti1Image(array, np.diag([2.0, 2.0, 2.0, 1.0])),
    ...              folder / name)
    >>> test = {"image": "phantom.nii.gz", "reference_map": "ref.nii.gz",
    ...         "filter": {"family": "mean", "kernel_size_voxels": 3},
    ...         "boundary": "reflect", "by_slice": False,
    ...         "rotation_invariance": False, "pooling": None}
    >>> (folder / "configurations.json").write_text(
    ...     json.dumps({"phase_1": {"tests": {"1_x": test}}})) > 0
    True
    >>> table = ibsi2_phase1_table(folder)
    >>> bool(table.loc["1_x", "passed"]), bool(table.loc["1_x", "max_abs_diff"] < 1e-9)
    (True, True)
    >>> import shutil
    >>> shutil.rmtree(folder)
    """
    import pandas as pd

    folder = Path(folder)
    tests = json.loads((folder / "configurations.json").read_text())["phase_1"]["tests"]
    if ids is not None:
        missing = sorted(set(ids) - set(tests))
        if missing:
            raise ValueError(f"ids: {missing} are not phase-1 tests of "
                             f"{folder / 'configurations.json'}")
        tests = {k: tests[k] for k in ids}
    rows = []
    for test_id, entry in tests.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("filter"), dict):
            raise ValueError(
                f"{folder / 'configurations.json'}: phase-1 test {test_id!r} has no "
                "'filter' entry")
        config = flat_config(entry)
        family = config.get("family")
        row = {"test": test_id, "family": family, "filter": _describe(config),
               "covered": family in FILTER_FAMILIES, "max_abs_diff": np.nan,
               "tolerance": np.nan, "worst_over_tolerance": np.nan, "passed": False}
        reference, _ = load_nifti_zyx(folder / entry["reference_map"])
        low, high = float(reference.min()), float(reference.max())
        row["tolerance"] = 0.01 * (high - low)
        if row["covered"]:
            image, spacing = load_nifti_zyx(folder / entry["image"])
            response = filter_image(image, spacing, config)
            diff = float(np.abs(response - reference).max())
            row["max_abs_diff"] = diff
            row["worst_over_tolerance"] = diff / row["tolerance"]
            row["passed"] = diff <= row["tolerance"]
        rows.append(row)
    return pd.DataFrame(rows).set_index("test")


def ibsi2_phase1_rst(table):
    """Format :func:`ibsi2_phase1_table`'s result as the reStructuredText of the docs.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`ibsi2_phase1_table`.

    Returns
    -------
    str
    """
    covered = table[table["covered"]]
    absent = sorted(set(table.loc[~table["covered"], "family"]))
    summary = (
        f"**{int(covered['passed'].sum())} of {len(covered)} covered phase-1 response "
        "maps within IBSI's criterion** (every voxel within 1% of the reference "
        "map's range).")
    uncovered = absent and (
        "Not covered by the library's filter families "
        f"({len(table) - len(covered)} maps): "
        + ", ".join(f"``{f}``" for f in absent) + ".")
    header = ["test", "filter", "max \\|response - reference\\|", "tolerance",
              "worst / tolerance", "pass"]
    rows = ([test_id.replace("_", "."), row["filter"], f"{row['max_abs_diff']:.3g}",
             f"{row['tolerance']:.4g}", f"{row['worst_over_tolerance']:.2g}",
             "yes" if row["passed"] else "**no**"]
            for test_id, row in covered.iterrows())
    return generated_table("benchmarks/ibsi2_phantom.py", [summary, uncovered],
                           header, rows)
