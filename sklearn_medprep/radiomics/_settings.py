"""PyRadiomics parameter settings: loading, validation with PyRadiomics' own schema.

A settings object is what PyRadiomics calls a *parameter file*: a mapping with the
top-level keys ``imageType`` (filters: Original, Wavelet, LoG, Square,
SquareRoot, Logarithm, Exponential, Gradient, LBP2D, LBP3D), ``featureClass``
(enabled classes and features), ``setting`` (resampling, discretisation,
normalisation, ``force2D``, ...) and ``voxelSetting``. It is validated with the
pykwalify schema shipped with PyRadiomics, so that exactly the files PyRadiomics
accepts are accepted here.
"""

import copy
import json
import logging
import os
import threading
from pathlib import Path

from ..filters._config import DEFINITIONS_REVISION
from ..utils._optional import import_optional
from ._discretisation import NO_DISCRETIZATION, split_option
from ._ibsi import ibsi_settings
from ._ibsi2_settings import IBSI2_KEY

__all__ = [
    "crop_margin",
    "load_settings",
    "settings_key",
    "validate_settings",
]

#: ``settings`` value of the IBSI-1 preset (see :mod:`sklearn_medprep.radiomics._ibsi`)
IBSI_PRESET = "ibsi"

# PyRadiomics' settings validation (pykwalify) and extractor construction are not
# thread-safe; every construction in this package goes through this lock.
RADIOMICS_LOCK = threading.RLock()

# Image types whose values at an ROI voxel depend only on the voxels within this
# many voxels of it (not on whole-image statistics nor on the image size); the
# image may then be cropped to the mask's bounding box plus this margin without
# changing any feature value. Everything else is never cropped.
_LOCAL_IMAGE_TYPES = {
    "Original": 0,
    # GradientMagnitudeImageFilter: central differences, 1-voxel support
    "Gradient": 2,
}


def load_settings(settings):
    """Return PyRadiomics parameters as a dict from a dict, a YAML/JSON path or None.

    Parameters
    ----------
    settings : dict, str, pathlib.Path or None
        Parameter mapping or path of a PyRadiomics parameter file (``.yaml``,
        ``.yml`` or ``.json``). None means PyRadiomics' defaults (Original image,
        every feature class but ``shape2D``). The string ``"ibsi"`` is the IBSI-1
        preset (:data:`sklearn_medprep.radiomics._ibsi.IBSI_SETTINGS`), not a file name.

    Returns
    -------
    dict
        A deep copy of the parameters (not yet validated).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file cannot be parsed or does not hold a mapping.

    Examples
    --------
    >>> from sklearn_medprep.radiomics._settings import load_settings
    >>> load_settings({"setting": {"binWidth": 10}})
    {'setting': {'binWidth': 10}}
    >>> load_settings(None)
    {}
    """
    if settings is None:
        return {}
    if isinstance(settings, str) and settings == IBSI_PRESET:

        return ibsi_settings()
    if isinstance(settings, dict):
        return copy.deepcopy(settings)
    if isinstance(settings, (str, os.PathLike)):
        path = Path(settings)
        if not path.is_file():
            raise FileNotFoundError(
                f"PyRadiomics parameter file not found: {str(path)!r}"
            )
        text = path.read_text()
        try:
            if path.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
        except Exception as exc:  # yaml.YAMLError, json.JSONDecodeError
            raise ValueError(
                f"cannot parse PyRadiomics parameter file {str(path)!r}: {exc}"
            ) from exc
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ValueError(
                f"PyRadiomics parameter file {str(path)!r} must hold a mapping with "
                f"keys imageType/featureClass/setting, got {type(data).__name__}"
            )
        return data
    raise TypeError(
        "settings must be a dict, the path of a PyRadiomics parameter file or "
        f"None, got {type(settings).__name__}"
    )


def validate_settings(settings):
    """Validate PyRadiomics parameters with PyRadiomics' own schema.

    Parameters
    ----------
    settings : dict, str, pathlib.Path or None
        See :func:`load_settings`.

    Returns
    -------
    dict
        The validated parameters.

    Raises
    ------
    ValueError
        With every problem the schema found, e.g. an unknown setting or image
        type, or a value out of range.

    Notes
    -----
    Besides PyRadiomics' parameters, ``setting`` may hold
    ``noDiscretization: true``: IBSI's "no discretisation", texture features
    whose grey levels are the intensities (see
    :mod:`sklearn_medprep.radiomics._discretisation`; the ``"ibsi"`` preset sets
    it). ``false`` is the same as leaving it out.

    Examples
    --------
    >>> from sklearn_medprep.radiomics._settings import validate_settings
    >>> validate_settings({"setting": {"binWidth": 10}})
    {'setting': {'binWidth': 10}}
    >>> validate_settings({"setting": {"binWidht": 10}})
    Traceback (most recent call last):
    ...
    ValueError: invalid PyRadiomics settings: Key 'binWidht' was not defined. \
Path: '/setting'
    """
    import pykwalify.core
    from pykwalify.errors import PyKwalifyException
    from radiomics import getParameterValidationFiles

    data, keep_intensities = split_option(load_settings(settings))
    schema_file, schema_funcs = getParameterValidationFiles()
    log = logging.getLogger("pykwalify")
    with RADIOMICS_LOCK:
        level = log.level
        log.setLevel(logging.CRITICAL + 1)
        try:
            core = pykwalify.core.Core(
                source_data=copy.deepcopy(data) if data else {},
                schema_files=[schema_file],
                extensions=[schema_funcs],
            )
            core.validate(raise_exception=False)
        except (PyKwalifyException, ValueError, TypeError) as exc:
            # schema functions of PyRadiomics raise ValueError themselves
            message = getattr(exc, "msg", None) or str(exc)
            raise ValueError(f"invalid PyRadiomics settings: {message}") from exc
        finally:
            log.setLevel(level)
    if core.validation_errors:
        problems = "; ".join(str(e).strip() for e in core.validation_errors)
        raise ValueError(f"invalid PyRadiomics settings: {problems}")
    if "LBP2D" in ((data or {}).get("imageType") or {}):
        # PyRadiomics computes LBP2D with scikit-image, an optional dependency
        import_optional("skimage", "the LBP2D image type")
    if keep_intensities:  # our option, unknown to PyRadiomics' schema
        data.setdefault("setting", {})[NO_DISCRETIZATION] = True
    return data


def settings_key(settings, *, include_diagnostics=False, definitions=None):
    """Return a canonical JSON text of validated settings (part of cache keys).

    Parameters
    ----------
    settings : dict
        Validated parameters.
    include_diagnostics : bool, default=False
        Whether diagnostics are extracted.
    definitions : None or str, default=None
        Feature definitions applied after PyRadiomics: None keeps PyRadiomics'
        values; the ``"ibsi"`` preset passes
        :func:`~sklearn_medprep.radiomics._ibsi_families.definitions_tag`
        (``"ibsi:<families>"``: it applies
        :func:`~sklearn_medprep.radiomics._ibsi.apply_ibsi_definitions` and adds
        the IBSI-1 families, so adding a family changes the key). Only a
        non-None value enters the key (keys of PyRadiomics' definitions are
        unchanged).
        With IBSI-2 filters (``imageType: {IBSI2: [...]}``) the key also holds
        the filters' definitions revision
        (:data:`sklearn_medprep.filters._config.DEFINITIONS_REVISION`), so that a
        change of a filter's response map is never served from a cache written
        before it.

    Returns
    -------
    str

    Examples
    --------
    >>> from sklearn_medprep.radiomics._settings import settings_key
    >>> settings_key({"setting": {"b": 1, "a": 2}})
    '{"diagnostics": false, "params": {"setting": {"b": 1, "a": 2}}}'
    """
    # keys keep their order: the order of image types and feature classes is
    # the order of PyRadiomics' output columns
    spec = {"diagnostics": bool(include_diagnostics), "params": settings}
    if definitions is not None:
        spec["definitions"] = definitions
    if IBSI2_KEY in ((settings or {}).get("imageType") or {}):
        spec["filters"] = DEFINITIONS_REVISION
    return json.dumps(spec, default=str)


def crop_margin(settings, *, include_diagnostics=False):
    """Return the crop margin (voxels) that keeps every feature value exact, or None.

    PyRadiomics filters the whole image it is given and then crops to the mask.
    Cropping the image first to the mask's bounding box plus a margin is exact
    only when every enabled image type is local (its value at a voxel depends on
    a bounded neighbourhood) and no step uses whole-image statistics or the image
    size: normalisation (whole-image mean and SD), resampling (B-spline
    coefficients over the whole image), Square/SquareRoot/Logarithm/Exponential
    (scaled by the whole-image maximum), LoG (recursive Gaussian), Wavelet (size-
    dependent padding) and LBP are therefore not cropped by this single margin,
    nor are diagnostics (they describe the whole image); filtered image types
    are cropped one at a time by :func:`sklearn_medprep.radiomics._crop.crop_plan`.

    Parameters
    ----------
    settings : dict
        Validated parameters.
    include_diagnostics : bool, default=False
        Diagnostics requested.

    Returns
    -------
    int or None
        The margin, or None where no crop is exact.

    Examples
    --------
    >>> from sklearn_medprep.radiomics._settings import crop_margin
    >>> crop_margin({})
    0
    >>> crop_margin({"imageType": {"Original": {}, "Gradient": {}}})
    2
    >>> crop_margin({"imageType": {"LoG": {"sigma": [1.0]}}}) is None
    True
    >>> crop_margin({"setting": {"normalize": True}}) is None
    True
    """
    if include_diagnostics:
        return None
    options = {**settings.get("setting", {}), **settings.get("voxelSetting", {})}
    if options.get("normalize"):
        return None
    if options.get("resampledPixelSpacing") is not None:
        return None
    if options.get("preCrop") or options.get("correctMask"):
        return None
    image_types = settings.get("imageType") or {"Original": {}}
    margin = 0
    for name, custom in image_types.items():
        if name not in _LOCAL_IMAGE_TYPES:
            return None
        if custom and set(custom) - {"gradientUseSpacing", "binWidth", "binCount"}:
            return None
        margin = max(margin, _LOCAL_IMAGE_TYPES[name])
    return margin
