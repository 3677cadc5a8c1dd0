"""The PyRadiomics backend: everything PyRadiomics-specific of the extractor.

Settings are PyRadiomics parameter files, validated with its own schema
(:mod:`sklearn_medprep.radiomics._settings`, once per distinct value and
process); the geometry check follows its ``geometryTolerance`` and
``correctMask``; crops are exact per image type
(:mod:`sklearn_medprep.radiomics._crop`); with ``settings="ibsi"``, IBSI's
definitions where PyRadiomics differs (:mod:`sklearn_medprep.radiomics._ibsi`) and
the IBSI-1 features PyRadiomics lacks, on the same image and ROI
(:mod:`sklearn_medprep.radiomics._ibsi_families`); with ``setting:
{noDiscretization: true}``, texture features whose grey levels are the
intensities (:mod:`sklearn_medprep.radiomics._discretisation`).
Registered as ``"pyradiomics"``, the default backend.
"""

import copy
import json
import logging

import numpy as np
import SimpleITK as sitk

from ..exceptions import GeometryMismatchError
from ..utils._optional import import_optional
from ._backend import (
    RadiomicsBackend,
    check_label,
    geometry_problem,
    register_backend,
)
from ._crop import CropPlan, bounding_box, crop_plan
from ._discretisation import check_intensities, intensity_extractor, split_option
from ._ibsi import apply_ibsi_definitions
from ._ibsi2_extract import ibsi2_features
from ._ibsi2_settings import IBSI2_KEY, PREFIX, split_ibsi2, validate_ibsi2
from ._ibsi_families import definitions_tag, family_values
from ._settings import (
    IBSI_PRESET,
    RADIOMICS_LOCK,
    crop_margin,
    load_settings,
    settings_key,
    validate_settings,
)

__all__ = ["PyRadiomicsBackend"]

# prefix of the feature names PyRadiomics gives each image type
_FEATURE_PREFIX = {
    "Original": "original_",
    "Wavelet": "wavelet-",
    "LoG": "log-sigma-",
    "Square": "square_",
    "SquareRoot": "squareroot_",
    "Logarithm": "logarithm_",
    "Exponential": "exponential_",
    "Gradient": "gradient_",
    "LBP2D": "lbp-2d_",
    "LBP3D": "lbp-3d-",
}
_FILTER_NEEDS = {
    "LBP2D": " (LBP2D needs scikit-image)",
    "LBP3D": (
        " (LBP3D needs trimesh and scipy.special.sph_harm, which SciPy 1.17 "
        "removed; PyRadiomics has not been updated for it)"
    ),
    "LoG": " (LoG needs a sigma smaller than the image extent)",
}

_VALIDATED = {}  # canonical settings JSON -> validated settings (per process)


def _validated_settings(settings):
    """Validate ``settings`` once per distinct value (PyRadiomics' schema is slow).

    The IBSI-2 filters (``imageType["IBSI2"]``) are checked here
    (:func:`~sklearn_medprep.radiomics._ibsi2_settings.validate_ibsi2`), the
    rest by PyRadiomics' schema.
    """
    data = load_settings(settings)
    text = json.dumps(data, sort_keys=True, default=str)
    if text not in _VALIDATED:
        if len(_VALIDATED) > 256:
            _VALIDATED.clear()
        rest, filters = split_ibsi2(data)
        valid = validate_settings(rest)
        if filters is not None:
            valid.setdefault("imageType", {})[IBSI2_KEY] = validate_ibsi2(filters)
        _VALIDATED[text] = valid
    return copy.deepcopy(_VALIDATED[text])


def _split_key(params):
    """``(PyRadiomics' params, IBSI-2 entries or None)`` of validated params."""
    return split_ibsi2(params)


_EXTRACTORS = {}  # per process: settings key -> RadiomicsFeatureExtractor


def _get_extractor(key, verbose):
    """Build (once per process, under a lock) the PyRadiomics extractor of ``key``."""
    extractor = _EXTRACTORS.get(key)
    if extractor is not None:
        return extractor
    with RADIOMICS_LOCK:
        extractor = _EXTRACTORS.get(key)
        if extractor is None:
            import radiomics
            from radiomics.featureextractor import RadiomicsFeatureExtractor

            radiomics.setVerbosity(logging.WARNING if verbose > 1 else logging.ERROR)
            spec = json.loads(key)
            params, filters = _split_key(spec["params"])
            params, keep_intensities = split_option(params)
            params.setdefault("setting", {})
            params["setting"]["additionalInfo"] = bool(spec["diagnostics"])
            if keep_intensities:  # IBSI "no discretisation"
                extractor = intensity_extractor(params)
            else:
                extractor = RadiomicsFeatureExtractor(params)
            if filters is not None and not params.get("imageType"):
                # IBSI-2 filters only: PyRadiomics would add "Original"
                extractor.enabledImagetypes = {}
            _EXTRACTORS[key] = extractor
    return extractor


def _plain(value):
    """Return a feature value as a Python float (complex with zero imaginary part
    under numpy >= 2.5 included); other diagnostics values unchanged.
    """
    if isinstance(value, (np.ndarray, np.generic)):
        if value.size != 1:
            return value
        value = value.item()
    if isinstance(value, complex):
        return float(value.real)
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    return value


def _crop(image, mask, label, margin):
    """Crop image and mask to the label's bounding box plus ``margin`` voxels."""
    bounds = bounding_box(sitk.GetArrayViewFromImage(mask), label)
    if bounds is None:
        return image, mask
    size = mask.GetSize()  # (x, y, z)
    index = []
    for dim, (lo, hi) in enumerate(reversed(bounds)):
        index.append(slice(max(lo - margin, 0), min(hi + margin + 1, size[dim])))
    index = tuple(index)
    return image[index], mask[index]


class PyRadiomicsBackend(RadiomicsBackend):
    """PyRadiomics' ``RadiomicsFeatureExtractor``, built once per settings and
    process, on the exact crop around the ROI (filtered types each on its own
    region, see :mod:`sklearn_medprep.radiomics._crop`); with
    ``settings="ibsi"``, IBSI's definitions where PyRadiomics differs and the
    IBSI-1 features it lacks (``original_ibsi_*``).
    """

    name = "pyradiomics"
    title = "PyRadiomics"

    def validate_settings(self, settings):
        """Validate PyRadiomics parameters with PyRadiomics' schema.

        ``settings``: a dict, a YAML/JSON file, None or ``"ibsi"`` (whose IBSI-1
        morphology needs scikit-image's marching cubes: checked here, at fit).
        """
        if isinstance(settings, str) and settings == IBSI_PRESET:
            import_optional("skimage.measure", "settings='ibsi' (IBSI-1 mesh)")
        return _validated_settings(settings)

    def settings_key(self, settings, *, include_diagnostics=False):
        ibsi = isinstance(settings, str) and settings == IBSI_PRESET
        return settings_key(
            self.validate_settings(settings),
            include_diagnostics=include_diagnostics,
            definitions=definitions_tag() if ibsi else None,
        )

    def versions(self):
        import radiomics

        return (radiomics.__version__, sitk.Version.VersionString(), np.__version__)

    def cache_material(self, key):
        # no backend name: the keys of caches written before the backend seam
        return key, self.versions()

    def check_inputs(self, image, mask, label, key):
        options = json.loads(key)["params"].get("setting", {})
        tolerance = options.get("geometryTolerance")
        if tolerance is None:
            tolerance = sitk.ProcessObject.GetGlobalDefaultCoordinateTolerance()
        if mask.GetNumberOfComponentsPerPixel() != 1:
            # segmentation object: PyRadiomics selects ``label_channel`` itself
            return mask, False
        problem = geometry_problem(image, mask, tolerance)
        if problem is not None:
            if options.get("correctMask", False):
                return mask, False  # PyRadiomics resamples the mask onto the image
            raise GeometryMismatchError(
                f"image and mask differ in geometry: {problem}"
            )
        return check_label(mask, label), True  # cast to UInt32 as PyRadiomics

    def plan_crop(self, key):
        spec = json.loads(key)
        params, filters = _split_key(spec["params"])
        if filters is not None and not params.get("imageType"):
            # IBSI-2 filters only (cropped on their own): shape features on
            # the ROI's box, unless a whole-image step comes first
            plan = crop_plan(params, include_diagnostics=spec["diagnostics"])
            return None if plan is None else 0
        margin = crop_margin(params, include_diagnostics=spec["diagnostics"])
        if margin is None or margin == 0:
            # margin 0 (``Original`` only: default settings) too: the plan does
            # the mask check once, one grey-level discretisation for all
            # texture classes and lists feature names once per class, where
            # ``execute`` on the crop repeats them (about 7% of brain1's
            # extraction); the same values bit for bit
            plan = crop_plan(params, include_diagnostics=spec["diagnostics"])
            if plan is not None:
                return plan
        return margin

    def extract(self, image, mask, label, key, plan, verbose):
        extractor = _get_extractor(key, verbose)
        spec = json.loads(key)
        filters = _split_key(spec["params"])[1]
        keep_intensities = split_option(spec["params"])[1]
        if keep_intensities and mask.GetSize() == image.GetSize() \
                and mask.GetNumberOfComponentsPerPixel() == 1:
            # (other masks: checked by the feature classes, on PyRadiomics' grid)
            check_intensities(image, mask, int(label))
        # before the crop: the IBSI-2 filters' margins, the IBSI-1 local peaks
        full_image, full_mask = image, mask
        try:
            if isinstance(plan, CropPlan):  # filtered image types, each on its region
                result = plan.execute(extractor, image, mask, int(label))
            else:
                if plan is not None:
                    image, mask = _crop(image, mask, label, plan)
                result = extractor.execute(image, mask, label=int(label))
        except Exception as exc:  # noqa: BLE001 - re-raised, typed if geometry
            # PyRadiomics' own geometry check (e.g. after correctMask)
            message = str(exc).strip()
            if "geometry mismatch" in message or "size mismatch" in message:
                raise GeometryMismatchError(message) from exc
            raise
        if filters:
            result.update(ibsi2_features(extractor, full_image, full_mask,
                                         int(label), filters))
        values = [(name, _plain(value)) for name, value in result.items()]
        if str(spec.get("definitions", "")).startswith("ibsi"):
            n_voxels = int((sitk.GetArrayViewFromImage(mask) == label).sum())
            values = apply_ibsi_definitions(values, n_voxels)
            bin_width = spec["params"].get("setting", {}).get("binWidth", 25)
            values += family_values(full_image, full_mask, int(label), bin_width,
                                    keep_intensities=keep_intensities)
        return values

    def check_feature_names(self, names, settings):
        """Refuse an enabled image type that gave no feature (never silent)."""
        params, filters = _split_key(settings)
        enabled = params.get("imageType") or ({} if filters else {"Original": {}})
        names = [name.lower() for name in names]
        for entry in filters or ():
            prefix = (PREFIX + entry["name"] + "_").lower()
            if not any(name.startswith(prefix) for name in names):
                raise ValueError(
                    f"IBSI-2 filter {entry['name']!r} produced no features: only "
                    "shape features are enabled, which PyRadiomics computes on the "
                    "original image only; enable e.g. featureClass 'firstorder'"
                )
        for image_type in enabled:
            prefix = _FEATURE_PREFIX.get(image_type, image_type.lower())
            if not any(name.startswith(prefix) for name in names):
                raise ValueError(
                    f"image type {image_type!r} produced no features: PyRadiomics "
                    "skipped it (a filter it could not build here"
                    + _FILTER_NEEDS.get(image_type, "")
                    + ", or only shape features enabled, which it computes on the "
                    "Original image only); remove it from settings['imageType'] or "
                    "install what it needs"
                )


register_backend(PyRadiomicsBackend(), default=True)
