"""Riesz-transformed filters of IBSI-2 (LoG and Simoncelli), in the Fourier domain.

The Riesz transform of order ``l = (l_x, l_y, l_z)`` (``L = l_x + l_y + l_z``)
multiplies a filter's transfer function by

    (-i)**L * sqrt(L! / (l_x! l_y! l_z!)) * w_x**l_x * w_y**l_y * w_z**l_z / |w|**L

(IBSI-2 reference manual); the response map is the real part. The frequency
coordinates ``w`` are those of the Simoncelli wavelet (see
``_simoncelli.frequency_coordinates``), normalised per axis, so the spacing
is not used in the Riesz factor; at ``w = 0`` the factor is 0.

- ``riesz_transformed_laplacian_of_gaussian``: the Laplacian-of-Gaussian
  kernel (``sigma_mm``, truncated at ``kernel_truncate_sigmas`` standard
  deviations) is transformed to the Fourier domain on the image padded by the
  kernel radius with the configured ``boundary`` (a scipy.ndimage mode), and
  the padding is cropped after filtering.
- ``riesz_transformed_simoncelli``: the Simoncelli transfer function at
  ``decomposition_level``; periodic boundary (``boundary`` ``wrap`` or null).
"""

import math

import numpy as np
from scipy import fft

from ._boundary import filter_axes, get_param, pad
from ._config import flat_config, prepare
from ._log import log_kernel
from ._simoncelli import (
    _simoncelli_settings,
    fourier_filter,
    frequency_coordinates,
    simoncelli_transfer,
)

__all__ = [
    "riesz_factor",
    "riesz_log_response",
    "riesz_response",
    "riesz_simoncelli_response",
]

RIESZ_LOG = "riesz_transformed_laplacian_of_gaussian"
RIESZ_SIMONCELLI = "riesz_transformed_simoncelli"


def riesz_factor(shape, order):
    """Fourier-domain factor of the Riesz transform of ``order``, in FFT order.

    Parameters
    ----------
    shape : tuple of int
        Shape of the array filtered.
    order : sequence of int
        Non-negative order per array axis (same length as ``shape``).

    Returns
    -------
    ndarray of complex128 of shape ``shape``
        The factor (1 everywhere for order 0).

    Examples
    --------
    >>> f = riesz_factor((8, 8), (1, 0))
    >>> f.shape, bool(np.all(np.abs(f) <= 1.0 + 1e-12))
    ((8, 8), True)
    """
    order = [int(o) for o in order]
    total = sum(order)
    if total == 0:
        return np.ones(shape, dtype=np.complex128)
    coordinates = frequency_coordinates(shape)
    radius = np.sqrt(sum(c**2 for c in coordinates))
    numerator = np.ones(shape)
    for c, o in zip(coordinates, order):
        if o:
            numerator = numerator * c**o
    prefactor = (-1j) ** total * math.sqrt(
        math.factorial(total) / math.prod(math.factorial(o) for o in order)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(radius > 0, numerator / radius**total, 0.0)
    return prefactor * factor


def _riesz_order(config, by_slice):
    """``riesz_order_xyz`` as orders per array axis ((z,) y, x), checked."""
    if config.get("riesz_order_xyz") is None:
        raise ValueError(
            f"filter config of family {config.get('family')!r} needs the key "
            "'riesz_order_xyz'")
    given = config["riesz_order_xyz"]
    n_axes = 2 if by_slice else 3
    try:
        order = [int(o) for o in given]
        valid = all(o >= 0 and o == g for o, g in zip(order, given))
        valid = valid and len(order) in (n_axes, 3) and not isinstance(given, str)
    except (TypeError, ValueError):
        valid = False
    if not valid or (by_slice and len(order) == 3 and order[2] != 0):
        raise ValueError(
            f"filter config key 'riesz_order_xyz': expected {n_axes} non-negative "
            f"integers (orders along x, y{'' if by_slice else ', z'}), got {given!r}")
    return order[:n_axes][::-1]  # x, y(, z) -> array axes (z,) y, x


def riesz_log_response(image, spacing, config):
    """Riesz-transformed Laplacian of Gaussian; see :func:`riesz_response`."""
    image, spacing, config = prepare(
        _riesz_log, image, spacing, flat_config(config), [RIESZ_LOG])
    return _riesz_log(image, spacing, config)


def _riesz_log(image, spacing, config):
    """The family function: ``config`` flat, as :func:`.prepare` leaves it."""
    if config["rotation_invariance"]:
        raise ValueError(
            "filter config key 'rotation_invariance': not available for "
            "Riesz-transformed filters, give False")
    by_slice, mode = config["by_slice"], config["boundary"]
    order = _riesz_order(config, by_slice)
    sigma_mm = get_param(config, "sigma_mm", "positive")
    truncate = get_param(config, "kernel_truncate_sigmas", "positive", default=4.0)
    axes = filter_axes(by_slice)
    kernel = log_kernel(sigma_mm / spacing[list(axes)], truncate, len(axes))
    radius = [(k - 1) // 2 for k in kernel.shape]
    lead = 3 - len(axes)
    padded = pad(image, [(0, 0)] * lead + [(r, r) for r in radius], mode)
    shape = padded.shape[lead:]
    # the kernel with its centre moved (circularly) to index 0: no shift
    placed = np.pad(kernel, [(0, n - k) for n, k in zip(shape, kernel.shape)])
    placed = np.roll(placed, [-r for r in radius], axis=tuple(range(len(axes))))
    transfer = fft.fftn(placed) * riesz_factor(shape, order)
    response = fourier_filter(padded, transfer, by_slice)
    crop = (slice(None),) * lead + tuple(
        slice(r, r + n) for r, n in zip(radius, image.shape[lead:]))
    return np.ascontiguousarray(response[crop])


def riesz_simoncelli_response(image, spacing, config):
    """Riesz-transformed Simoncelli wavelet; see :func:`riesz_response`."""
    image, spacing, config = prepare(
        _riesz_simoncelli, image, spacing, flat_config(config), [RIESZ_SIMONCELLI])
    return _riesz_simoncelli(image, spacing, config)


def _riesz_simoncelli(image, spacing, config):
    """The family function: ``config`` flat, as :func:`.prepare` leaves it."""
    level, by_slice = _simoncelli_settings(config)
    order = _riesz_order(config, by_slice)
    shape = image.shape[1:] if by_slice else image.shape
    transfer = simoncelli_transfer(shape, level) * riesz_factor(shape, order)
    return fourier_filter(image, transfer, by_slice)


def riesz_response(image, spacing, config):
    """Response map of an IBSI-2 Riesz-transformed LoG or Simoncelli filter.

    Parameters
    ----------
    image : ndarray of shape (z, y, x)
        The image (SimpleITK's axis order); cast to float64.
    spacing : sequence of 3 float
        Voxel spacing (z, y, x) in mm (divides ``sigma_mm`` of the LoG).
    config : dict
        The filter configuration, flat or a whole configurations.json test
        entry (see :func:`~sklearn_medprep.filters._config.flat_config`):
        ``family`` ``"riesz_transformed_laplacian_of_gaussian"`` (with
        ``sigma_mm`` and ``kernel_truncate_sigmas``, default 4, and
        ``boundary``: ``constant`` (default), ``nearest``, ``wrap`` or
        ``reflect``) or ``"riesz_transformed_simoncelli"`` (with
        ``decomposition_level``, default 1, and ``boundary`` ``wrap``, the
        default: the filter is periodic); ``riesz_order_xyz`` (orders along
        x, y, z; x, y when ``by_slice``); ``by_slice``;
        ``rotation_invariance`` (False).

    Returns
    -------
    ndarray of float64, same shape as ``image``
        The response map (real part).

    Raises
    ------
    ValueError
        If a configuration key is missing or invalid (the message names it).

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((7, 8, 9))
    >>> image[3, 4, 4] = 1.0
    >>> config = {"filter": {"family": "riesz_transformed_laplacian_of_gaussian",
    ...                      "sigma_mm": 2.0, "kernel_truncate_sigmas": 4.0,
    ...                      "riesz_order_xyz": [0, 0, 0]},
    ...           "boundary": "constant", "by_slice": False,
    ...           "rotation_invariance": False}
    >>> response = riesz_response(image, (1.0, 1.0, 1.0), config)
    >>> response.shape, bool(response[3, 4, 4] < 0)
    ((7, 8, 9), True)
    """
    config = flat_config(config)
    family = config.setdefault("family", RIESZ_LOG)
    if family not in (RIESZ_LOG, RIESZ_SIMONCELLI):
        raise ValueError(f"filter config key 'family': {family!r} is not one of "
                         f"{[RIESZ_LOG, RIESZ_SIMONCELLI]}")
    if family == RIESZ_SIMONCELLI:
        return riesz_simoncelli_response(image, spacing, config)
    return riesz_log_response(image, spacing, config)


_riesz_log.accepted_keys = frozenset(
    {"sigma_mm", "kernel_truncate_sigmas", "riesz_order_xyz"})
_riesz_simoncelli.accepted_keys = frozenset(
    {"wavelet", "decomposition_level", "response", "riesz_order_xyz"})
#: the boundary :func:`filter_image` should fill in when none is given
_riesz_simoncelli.default_boundary = "wrap"
