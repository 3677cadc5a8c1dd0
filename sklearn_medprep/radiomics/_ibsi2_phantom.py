"""IBSI-2 phase 2: filtered CT phantom statistics through RadiomicsExtractor.

:func:`ibsi2_phase2_table` processes IBSI-2's CT radiomics phantom as phase 2
prescribes (``configurations.json`` ``phase_2.processing``; the conventions of
mirp, whose tests define the configurations): variant A (2D) as acquired,
filters by slice; variant B (3D) resampled to 1 mm isotropic with a cubic
spline (grid centres aligned, ``nearest`` extension, no anti-aliasing,
intensities rounded to integers), the mask by linear interpolation kept at
>= 0.5; both resegmented to [-1000, 400] HU (PyRadiomics' ``resegmentRange``).
Each covered configuration's filter is an entry of the ``"IBSI2"`` image type,
and ``RadiomicsExtractor`` computes the 18 intensity statistics of its
response map inside the ROI: 15 are PyRadiomics' firstorder features (excess
kurtosis = PyRadiomics' kurtosis - 3), the coefficient of variation is
derived from its variance and mean, and the median absolute deviation and the
quartile coefficient of dispersion (not in PyRadiomics) are computed here from
the same response map. ``docs/user_guide/ibsi2_phase2_table.rst.inc`` is its
output (:func:`ibsi2_phase2_rst`, written by
``benchmarks/ibsi2_phantom_phase2.py --write``).
"""

import csv
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..filters._dispatch import FILTER_FAMILIES
from ..utils._rst import generated_table
from ._extractor import RadiomicsExtractor
from ._ibsi2_extract import _preprocess, ibsi2_regions, response_region
from ._ibsi2_settings import validate_ibsi2
from ._pyradiomics import _get_extractor

__all__ = ["ibsi2_phase2_table", "ibsi2_phase2_rst"]

#: IBSI feature tag -> PyRadiomics firstorder feature (None: computed here)
STATISTICS = {
    "stat_mean": "Mean",
    "stat_var": "Variance",
    "stat_skew": "Skewness",
    "stat_kurt": "Kurtosis",
    "stat_median": "Median",
    "stat_min": "Minimum",
    "stat_p10": "10Percentile",
    "stat_p90": "90Percentile",
    "stat_max": "Maximum",
    "stat_iqr": "InterquartileRange",
    "stat_range": "Range",
    "stat_mad": "MeanAbsoluteDeviation",
    "stat_rmad": "RobustMeanAbsoluteDeviation",
    "stat_medad": None,
    "stat_cov": None,
    "stat_qcod": None,
    "stat_energy": "Energy",
    "stat_rms": "RootMeanSquared",
}
RESEGMENT = [-1000.0, 400.0]


def _read(folder, config):
    image = sitk.ReadImage(str(folder / config["image"]), sitk.sitkFloat64)
    mask = sitk.ReadImage(str(folder / config["mask"]), sitk.sitkUInt8)
    return image, mask


def resample_mirp(image, mask, spacing=1.0):
    """Resample as mirp does for IBSI (see the module docstring).

    Parameters
    ----------
    image, mask : SimpleITK.Image
    spacing : float
        New isotropic spacing (mm).

    Returns
    -------
    (SimpleITK.Image, SimpleITK.Image)
        Image (float64, rounded) and mask (uint8).
    """
    from scipy.ndimage import map_coordinates

    old = np.array(image.GetSpacing()[::-1], dtype=float)  # (z, y, x)
    shape = np.array(image.GetSize()[::-1])
    new = np.full(3, float(spacing))
    size = np.ceil(shape * old / new).astype(int)
    step = new / old
    origin = 0.5 * (shape - 1.0) - 0.5 * (size - 1.0) * step
    axes = [np.arange(n) * s + o for n, s, o in zip(size, step, origin)]
    grid = np.meshgrid(*axes, indexing="ij")
    array = sitk.GetArrayViewFromImage(image).astype(np.float64)
    values = np.round(map_coordinates(array, grid, order=3, mode="nearest"))
    labels = sitk.GetArrayViewFromImage(mask).astype(np.float64)
    kept = map_coordinates(labels, grid, order=1, mode="constant")
    kept = np.around(kept, 6) >= 0.5
    out = []
    for data in (values, kept.astype(np.uint8)):
        item = sitk.GetImageFromArray(data)
        item.SetSpacing(tuple(new[::-1]))
        item.SetDirection(image.GetDirection())
        item.SetOrigin(image.TransformContinuousIndexToPhysicalPoint(
            [float(v) for v in origin[::-1]]))
        out.append(item)
    return out[0], out[1]


def _entry(config_id, config):
    spec = {key: value for key, value in config["filter"].items()}
    spec.update(boundary=config["boundary"], by_slice=bool(config["by_slice"]),
                rotation_invariance=bool(config["rotation_invariance"]),
                name="c" + config_id.replace(".", ""))
    if config.get("pooling"):
        spec["pooling"] = config["pooling"]
    if spec["family"] == "nonseparable_wavelet":
        # mirp passes "reflect" but filters in the Fourier domain, unpadded:
        # the boundary in effect is periodic (configurations.json's note)
        spec["boundary"] = "wrap"
    return spec


def _settings(entries, original):
    image_types = {"Original": {}} if original else {}
    if entries:
        image_types["IBSI2"] = entries
    return {
        "imageType": image_types,
        "featureClass": {"firstorder": [f for f in STATISTICS.values() if f]},
        "setting": {"resegmentRange": list(RESEGMENT)},
    }


def _own_statistics(values):
    """The median absolute deviation and quartile coefficient of dispersion."""
    median = np.median(values)
    q1, q3 = np.percentile(values, [25, 75])
    return {"stat_medad": float(np.mean(np.abs(values - median))),
            "stat_qcod": float((q3 - q1) / (q3 + q1))}


def ibsi2_phase2_table(folder, configurations=None):
    """Phase-2 intensity statistics of the filtered CT phantom against IBSI-2.

    Parameters
    ----------
    folder : str or pathlib.Path
        IBSI-2 reference data (``configurations.json``,
        ``reference_feature_values.csv``, ``ct_phantom/``).
    configurations : list of str or None, default=None
        Configuration ids (``"1.A"``, ...); None: every configuration. Those
        whose filter family :func:`~sklearn_medprep.filters.filter_image`
        does not have are listed with ``covered`` False and no value.

    Returns
    -------
    pandas.DataFrame
        One row per (configuration, feature tag): ``configuration``,
        ``family``, ``feature``, ``value``, ``reference``, ``tolerance``,
        ``passed`` (None where not covered or without consensus), ``source``
        (``pyradiomics``, ``derived`` or ``computed``), ``covered``.
    """
    import pandas as pd

    folder = Path(folder)
    spec = json.loads((folder / "configurations.json").read_text())["phase_2"]
    with open(folder / "reference_feature_values.csv", newline="") as handle:
        reference = {(row["filter_id"], row["feature_tag"]): row
                     for row in csv.DictReader(handle, delimiter=";")}
    ids = list(spec["configurations"]) if configurations is None else configurations
    unknown = [i for i in ids if i not in spec["configurations"]]
    if unknown:
        raise ValueError(f"unknown phase-2 configuration(s) {unknown}; the file "
                         f"has {list(spec['configurations'])}")
    values = {}
    for variant in ("A", "B"):
        mine = [i for i in ids if spec["configurations"][i]["variant"] == variant]
        covered = [i for i in mine if spec["configurations"][i]["filter"] is None
                   or spec["configurations"][i]["filter"]["family"] in FILTER_FAMILIES]
        if not covered:
            continue
        image, mask = _read(folder, spec["configurations"][covered[0]])
        if variant == "B":
            image, mask = resample_mirp(image, mask, 1.0)
        values.update(_variant(spec["configurations"], covered, image, mask))
    rows = []
    for config_id in ids:
        config = spec["configurations"][config_id]
        family = config["filter"]["family"] if config["filter"] else "none"
        for tag in STATISTICS:
            ref = reference.get((config_id, tag), {})
            ref_value = float(ref["consensus_value"]) if ref.get("consensus_value") \
                else None
            tol = float(ref["tolerance"]) if ref.get("tolerance") else None
            value, source = values.get((config_id, tag), (None, None))
            passed = None
            if value is not None and ref_value is not None and tol is not None:
                passed = bool(abs(value - ref_value) <= tol)
            rows.append((config_id, family, tag, value, ref_value, tol, passed,
                         source, (config_id, tag) in values))
    return pd.DataFrame(rows, columns=["configuration", "family", "feature", "value",
                                       "reference", "tolerance", "passed", "source",
                                       "covered"])


def _variant(configs, ids, image, mask):
    """``{(id, tag): (value, source)}`` of one processing variant's configurations."""
    import pandas as pd

    original = [i for i in ids if configs[i]["filter"] is None]
    filtered = [i for i in ids if configs[i]["filter"] is not None]
    entries = validate_ibsi2([_entry(i, configs[i]) for i in filtered])
    settings = _settings(entries, bool(original))
    table = pd.DataFrame({"image": [image], "mask": [mask]}, index=["phantom"])
    extractor = RadiomicsExtractor(settings=settings)
    out = extractor.fit_transform(table).iloc[0]
    # the response maps again, on their regions, for the 2 statistics
    # PyRadiomics lacks (the same preprocessing as the extractor's)
    engine = _get_extractor(extractor._key_, 0)
    pre_image, pre_mask, box, _ = _preprocess(engine, image, mask, 1)
    values = {}
    for config_id in ids:
        if configs[config_id]["filter"] is None:
            prefix = "original"
            voxels = sitk.GetArrayViewFromImage(pre_image)[
                sitk.GetArrayViewFromImage(pre_mask) == 1]
        else:
            entry = entries[filtered.index(config_id)]
            prefix = "ibsi2-" + entry["name"]
            index = ibsi2_regions(entry, pre_image.GetSize(), pre_image.GetSpacing(),
                                  box)
            # copies: a view of a temporary image would outlive its memory
            response = sitk.GetArrayFromImage(response_region(pre_image, entry, index))
            roi = sitk.GetArrayFromImage(pre_mask[index]) == 1
            voxels = response[roi]
        for tag, name in STATISTICS.items():
            if name is not None:
                value = float(out[f"{prefix}_firstorder_{name}"])
                if tag == "stat_kurt":
                    value -= 3.0  # IBSI: excess kurtosis
                values[config_id, tag] = (value, "pyradiomics")
        mean = values[config_id, "stat_mean"][0]
        variance = values[config_id, "stat_var"][0]
        values[config_id, "stat_cov"] = (float(np.sqrt(variance) / mean), "derived")
        for tag, value in _own_statistics(voxels).items():
            values[config_id, tag] = (value, "computed")
    return values


def ibsi2_phase2_rst(table):
    """Format :func:`ibsi2_phase2_table`'s result as the docs' reStructuredText.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`ibsi2_phase2_table`.

    Returns
    -------
    str
    """
    covered = table[table["covered"]]
    tested = covered[covered["passed"].notna()]
    n_pass = int(tested["passed"].astype(bool).sum())
    missing = sorted(set(table.loc[~table["covered"], "configuration"]))
    summary = (
        f"**{n_pass} of {len(tested)} statistics within tolerance** over "
        f"{covered['configuration'].nunique()} configurations covered"
        + (f" (not covered: {', '.join(missing)})" if missing else "") + ".")
    header = ["configuration", "filter", "within tolerance",
              "misses (value vs consensus +- tolerance)"]
    rows = []
    for config_id, part in covered.groupby("configuration", sort=False):
        ok = part[part["passed"].notna()]
        misses = [
            f"``{row.feature}`` {row.value:.4g} vs {row.reference:.4g} +- "
            f"{row.tolerance:.3g}"
            for row in ok.itertuples() if not row.passed
        ]
        rows.append([config_id, part["family"].iloc[0],
                     f"{int(ok['passed'].astype(bool).sum())} of {len(ok)}",
                     "; ".join(misses) if misses else "--"])
    return generated_table("benchmarks/ibsi2_phantom_phase2.py", [summary], header,
                           rows)
