"""One entry point for every IBSI-2 filter family: :func:`filter_image`.

A family is a function ``f(image, spacing, config) -> ndarray`` registered in
:data:`FILTER_FAMILIES` under the name configurations.json gives it. The
dispatcher checks the image, the spacing and the keys every family shares
(``boundary``, ``by_slice``, ``rotation_invariance``, ``pooling``) and hands the
family a float64 (z, y, x) array, a (z, y, x) spacing and a config whose shared
keys are filled in. A family function may carry ``accepted_keys`` (a set of its
own keys): any other key is then refused, so that a typo never passes silently.
"""

import numpy as np

from ._boundary import check_boundary, check_image, get_param
from ._gabor import gabor_response
from ._laws import laws_response
from ._log import log_response
from ._mean import mean_response
from ._riesz import riesz_log_response, riesz_simoncelli_response
from ._simoncelli import simoncelli_response
from ._wavelet import separable_wavelet_response

__all__ = ["FILTER_FAMILIES", "POOLING_METHODS", "filter_image"]

#: family name (configurations.json's ``filter.family``) -> response function
FILTER_FAMILIES = {
    "mean": mean_response,
    "laplacian_of_gaussian": log_response,
    "laws": laws_response,
    "gabor": gabor_response,
    "separable_wavelet": separable_wavelet_response,
    "nonseparable_wavelet": simoncelli_response,
    "riesz_transformed_laplacian_of_gaussian": riesz_log_response,
    "riesz_transformed_simoncelli": riesz_simoncelli_response,
}


def _dimensionality_agrees(text, by_slice):
    """configurations.json's "dimensionality" text against ``by_slice``.

    By slice is ``"2D"``; otherwise ``"3D"`` or, for Gabor, a text starting with
    ``"2D kernel in a 3D volume"``.
    """
    if not isinstance(text, str):
        return False
    if by_slice:
        return text == "2D"
    return text == "3D" or text.startswith("2D kernel in a 3D volume")


#: voxel-wise pooling over rotations / orientations
POOLING_METHODS = ("max", "min", "mean")

_COMMON_KEYS = frozenset({
    "family", "boundary", "by_slice", "rotation_invariance", "pooling",
    "dimensionality",
})

# descriptive keys of configurations.json's filter entries that restate the
# others for a reader (values for 2 mm voxels, angles as text multiples of pi,
# the plane names), accepted and not used; the restatements a family can check
# (Laws' per-axis letters, Gabor's orientation list) are that family's keys
_DESCRIPTIVE_KEYS = frozenset({
    "derived_for_2mm_voxels", "theta_rad", "theta_step_rad", "planes",
    "kernel_dimensionality",
})


def filter_image(image, spacing, config):
    """Filter a (z, y, x) image with an IBSI-2 filter; return the response map.

    Parameters
    ----------
    image : array-like of shape (z, y, x)
        Intensities, as SimpleITK's ``GetArrayFromImage`` orders them (IBSI's x is
        the last axis). Cast to float64.
    spacing : sequence of 3 floats
        Voxel spacing in mm, ordered (z, y, x) (SimpleITK's ``GetSpacing()``
        reversed).
    config : dict
        The ``filter`` entry of IBSI-2's configurations.json (``family`` and its
        parameters: ``kernel_size_voxels``; ``sigma_mm``,
        ``kernel_truncate_sigmas``; ``kernel``, ``energy_map``,
        ``energy_distance_voxels``; ``sigma_mm``, ``lambda_mm``, ``gamma``,
        ``theta_deg``, ``theta_step_deg``, ``response``) plus the shared keys
        ``boundary`` (``"constant"``, ``"nearest"``, ``"wrap"`` or ``"reflect"``,
        default ``"constant"``, ``"wrap"`` for the Simoncelli families),
        ``by_slice`` (default False),
        ``rotation_invariance`` (default False) and ``pooling`` (``"max"``,
        ``"min"`` or ``"mean"``; required with rotation invariance).

    Returns
    -------
    ndarray of float64, same shape as ``image``

    Raises
    ------
    ValueError
        Naming the key at fault (unknown family, unknown key, missing or bad
        value), or the image or spacing.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_medprep.filters import filter_image
    >>> image = np.zeros((5, 6, 7))
    >>> image[2, 3, 3] = 27.0
    >>> out = filter_image(image, (2.0, 2.0, 2.0),
    ...                    {"family": "mean", "kernel_size_voxels": 3,
    ...                     "boundary": "constant"})
    >>> out.shape, float(out[1, 2, 4]), float(out.sum())
    ((5, 6, 7), 1.0, 27.0)
    """
    if not isinstance(config, dict):
        raise ValueError(f"config: expected a dict, got {type(config).__name__}")
    family = config.get("family")
    if family not in FILTER_FAMILIES:
        raise ValueError(
            f"filter config key 'family': {family!r} is not one of "
            f"{sorted(FILTER_FAMILIES)}")
    function = FILTER_FAMILIES[family]
    accepted = getattr(function, "accepted_keys", None)
    if accepted is not None:
        unknown = sorted(set(config) - _COMMON_KEYS - _DESCRIPTIVE_KEYS - set(accepted))
        if unknown:
            raise ValueError(
                f"filter config key {unknown[0]!r} is not a parameter of family "
                f"{family!r} (its keys: {sorted(accepted)}, and the shared keys "
                f"{sorted(_COMMON_KEYS)})")
    config = dict(config)
    # no boundary given: the family's own (periodic for the Fourier-domain
    # Simoncelli families), else zero padding
    config["boundary"] = check_boundary(
        config.get("boundary") or getattr(function, "default_boundary", "constant"))
    config["by_slice"] = bool(get_param(config, "by_slice", "bool", default=False))
    config["rotation_invariance"] = bool(
        get_param(config, "rotation_invariance", "bool", default=False))
    dimensionality = config.get("dimensionality")
    if dimensionality is not None and not _dimensionality_agrees(
            dimensionality, config["by_slice"]):
        raise ValueError(
            f"filter config key 'dimensionality': {dimensionality!r} contradicts "
            f"by_slice={config['by_slice']} (by_slice True is '2D', False is '3D' or, "
            "for Gabor, '2D kernel in a 3D volume')")
    pooling = config.get("pooling")
    if pooling is not None or config["rotation_invariance"]:
        config["pooling"] = get_param(config, "pooling", "str", choices=POOLING_METHODS)
    image, spacing = check_image(image, spacing)
    out = np.asarray(function(image, spacing, config), dtype=np.float64)
    if out.shape != image.shape:  # pragma: no cover - a family's bug
        raise RuntimeError(
            f"filter family {family!r} returned shape {out.shape} for an image of "
            f"shape {image.shape}")
    return out
