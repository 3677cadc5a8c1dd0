"""Simoncelli (non-separable, isotropic) wavelet of IBSI-2, in the Fourier domain.

IBSI-2 defines the Simoncelli wavelet by its transfer function, a function
of the normalised frequency radius ``r`` (1 at the Nyquist frequency):

    psi(r) = cos(pi / 2 * log2(2 * r / r_max))   for r_max / 4 <= r <= r_max

and 0 elsewhere, with ``r_max = 2 ** -(level - 1)`` at decomposition level
``level`` (a band-pass one octave wide, halved at each level). The response
map is the real part of the inverse FFT of the image's FFT times the transfer
function, so the boundary is periodic.

The frequency grid follows the reference implementation used for the IBSI-2
reference maps (mirp): along an axis of ``n`` voxels the coordinate of the
centred (fftshift) index ``i`` is ``(i - c) / c`` with ``c = (n - 1) / 2``,
so that it runs from -1 to 1 over the axis. The zero frequency, which this
grid puts half a bin off 0, always gets the value 0 (a wavelet has no mean;
on the 64-voxel phantoms it is outside the band up to level 4 anyway).
"""

import numpy as np
from scipy import fft

from ._boundary import get_param
from ._config import flat_config, prepare

__all__ = ["frequency_coordinates", "simoncelli_response", "simoncelli_transfer"]


def frequency_coordinates(shape):
    """Normalised frequency coordinate of each axis, in FFT (unshifted) order.

    Parameters
    ----------
    shape : tuple of int
        Shape of the array transformed.

    Returns
    -------
    list of ndarray
        One array per axis, shaped to broadcast against ``shape``; the
        coordinate runs from -1 to 1 over the centred axis (see the module
        docstring), 0 for an axis of length 1.

    Examples
    --------
    >>> [c.shape for c in frequency_coordinates((4, 3))]
    [(4, 1), (1, 3)]
    """
    coordinates = []
    for axis, n in enumerate(shape):
        centre = (n - 1) / 2.0
        if n > 1:
            centred = (np.arange(n) - centre) / centre
        else:
            centred = np.zeros(1)
        view = [1] * len(shape)
        view[axis] = n
        coordinates.append(fft.ifftshift(centred).reshape(view))
    return coordinates


def simoncelli_transfer(shape, level):
    """Transfer function of the Simoncelli wavelet at ``level``, in FFT order.

    Parameters
    ----------
    shape : tuple of int
        Shape of the (2D or 3D) array filtered.
    level : int
        Decomposition level (1 for the highest band).

    Returns
    -------
    ndarray of float64 of shape ``shape``
        The transfer function.

    Examples
    --------
    >>> h = simoncelli_transfer((16, 16, 16), 1)
    >>> h.shape, float(h.max()) <= 1.0, float(h[0, 0, 0])
    ((16, 16, 16), True, 0.0)
    """
    radius = np.sqrt(sum(c**2 for c in frequency_coordinates(shape)))
    r_max = 2.0 ** -(level - 1)
    band = (radius >= r_max / 4.0) & (radius <= r_max)
    transfer = np.zeros(radius.shape)
    transfer[band] = np.cos(np.pi / 2.0 * np.log2(2.0 * radius[band] / r_max))
    # the half-bin offset of the grid puts the zero frequency at a radius > 0,
    # inside the band of a high level on a small grid; a wavelet has no mean
    transfer.flat[0] = 0.0
    return transfer


def _simoncelli_settings(config):
    """``decomposition_level`` and ``by_slice`` of a prepared Simoncelli config."""
    wavelet = get_param(config, "wavelet", "str", default="simoncelli")
    if wavelet != "simoncelli":
        raise ValueError(
            f"filter config key 'wavelet': {wavelet!r} is not 'simoncelli'")
    level = get_param(config, "decomposition_level", "positive_int", default=1)
    get_param(config, "response", "str", default="real", choices=("real",))
    boundary = config["boundary"]
    if boundary != "wrap":
        raise ValueError(
            f"filter config key 'boundary': {boundary!r}; the Simoncelli wavelet is "
            "applied in the Fourier domain, so its boundary is periodic: give 'wrap'")
    if config["rotation_invariance"]:
        raise ValueError(
            "filter config key 'rotation_invariance': the Simoncelli wavelet is "
            "isotropic, give False")
    return int(level), config["by_slice"]


def fourier_filter(image, transfer, by_slice):
    """Real part of the periodic filtering of ``image`` by ``transfer`` (FFT order).

    With ``by_slice`` the 2D ``transfer`` filters every axial slice (axes 1, 2).
    The real part of ``ifft(fft(image) * transfer)`` is the inverse transform
    with the Hermitian part of ``transfer``, ``(H(w) + conj(H(-w))) / 2``, so
    real-input transforms (half the spectrum) give it exactly.
    """
    axes = (1, 2) if by_slice else (0, 1, 2)
    shape = [image.shape[a] for a in axes]
    mirrored = transfer
    for axis in range(transfer.ndim):  # index k -> -k (mod n) on every axis
        mirrored = np.roll(np.flip(mirrored, axis), 1, axis)
    hermitian = 0.5 * (transfer + np.conj(mirrored))
    half = hermitian[..., : shape[-1] // 2 + 1]
    if not np.iscomplexobj(transfer):
        half = half.real
    spectrum = fft.rfftn(image, axes=axes)
    spectrum *= half
    return fft.irfftn(spectrum, s=shape, axes=axes)


def simoncelli_response(image, spacing, config):
    """Response map of the IBSI-2 Simoncelli wavelet (real part, periodic boundary).

    Parameters
    ----------
    image : ndarray of shape (z, y, x)
        The image (SimpleITK's axis order); cast to float64.
    spacing : sequence of 3 float
        Voxel spacing (z, y, x) in mm; the wavelet is defined on the voxel
        grid, so the spacing is only checked.
    config : dict
        The filter configuration, flat or a whole configurations.json test
        entry (see :func:`~sklearn_medprep.filters._config.flat_config`):
        ``family`` ``"nonseparable_wavelet"``, ``wavelet`` ``"simoncelli"``,
        ``decomposition_level`` (default 1), ``response`` (``"real"``, the
        default), ``boundary`` (``"wrap"``, the default: the filter is
        periodic; any other value is refused), ``by_slice`` (filter each
        axial slice in 2D) and ``rotation_invariance`` (False: the wavelet is
        isotropic).

    Returns
    -------
    ndarray of float64, same shape as ``image``
        The response map.

    Raises
    ------
    ValueError
        If a configuration key is missing or invalid (the message names it).

    Examples
    --------
    >>> import numpy as np
    >>> image = np.arange(7 * 8 * 9, dtype=float).reshape(7, 8, 9) % 5
    >>> config = {"filter": {"family": "nonseparable_wavelet",
    ...                      "wavelet": "simoncelli", "decomposition_level": 1},
    ...           "boundary": "wrap", "by_slice": False,
    ...           "rotation_invariance": False}
    >>> response = simoncelli_response(image, (2.0, 2.0, 2.0), config)
    >>> response.shape, abs(float(response.mean())) < 1e-12
    ((7, 8, 9), True)
    """
    image, spacing, config = prepare(
        _simoncelli, image, spacing, flat_config(config), ["nonseparable_wavelet"])
    return _simoncelli(image, spacing, config)


def _simoncelli(image, spacing, config):
    """The family function: ``config`` flat, as :func:`.prepare` leaves it."""
    level, by_slice = _simoncelli_settings(config)
    shape = image.shape[1:] if by_slice else image.shape
    return fourier_filter(image, simoncelli_transfer(shape, level), by_slice)


_simoncelli.accepted_keys = frozenset(
    {"wavelet", "decomposition_level", "response"})
#: the boundary :func:`filter_image` should fill in when none is given
_simoncelli.default_boundary = "wrap"
