"""One entry point for every IBSI-2 filter family: :func:`filter_image`.

A family is a function ``f(image, spacing, config) -> ndarray`` registered in
:data:`FILTER_FAMILIES` under the name configurations.json gives it. The
dispatcher checks the image, the spacing and the keys every family shares
(``boundary``, ``by_slice``, ``rotation_invariance``, ``pooling``) and hands the
family a float64 (z, y, x) array, a (z, y, x) spacing and a config whose shared
keys are filled in (:func:`~sklearn_medprep.filters._config.prepare`), and the
family checks none of them again. A family function may carry ``accepted_keys``
(a set of its own keys): any other key is then refused, so that a typo never
passes silently. The wavelet and Riesz families registered here are the private
cores of public functions that can also be called on their own (they run the same
checks first).
"""

import numpy as np

from ._config import POOLING_METHODS, prepare
from ._gabor import gabor_response
from ._laws import laws_response
from ._log import log_response
from ._mean import mean_response
from ._riesz import _riesz_log, _riesz_simoncelli
from ._simoncelli import _simoncelli
from ._wavelet import _separable_wavelet

__all__ = ["FILTER_FAMILIES", "POOLING_METHODS", "filter_image"]

#: family name (configurations.json's ``filter.family``) -> response function
FILTER_FAMILIES = {
    "mean": mean_response,
    "laplacian_of_gaussian": log_response,
    "laws": laws_response,
    "gabor": gabor_response,
    "separable_wavelet": _separable_wavelet,
    "nonseparable_wavelet": _simoncelli,
    "riesz_transformed_laplacian_of_gaussian": _riesz_log,
    "riesz_transformed_simoncelli": _riesz_simoncelli,
}


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
    image, spacing, config = prepare(function, image, spacing, config, [family])
    out = np.asarray(function(image, spacing, config), dtype=np.float64)
    if out.shape != image.shape:  # pragma: no cover - a family's bug
        raise RuntimeError(
            f"filter family {family!r} returned shape {out.shape} for an image of "
            f"shape {image.shape}")
    return out
