"""Separable wavelet filters of IBSI-2 (stationary, undecimated, a trous).

The filter of an IBSI-2 separable wavelet is a product of one-dimensional
PyWavelets decomposition kernels, the low-pass ``dec_lo`` (``L``) or the
high-pass ``dec_hi`` (``H``), one per axis. The filter set is written in the
order x, y, z: ``"LHL"`` is low-pass along x, high-pass along y and low-pass
along z. The image is a ``(z, y, x)`` array (SimpleITK's order), so x is the
*last* array axis.

At decomposition level ``j`` the image is first low-pass filtered along every
axis at the levels ``1 .. j - 1`` and then filtered with the filter set at
level ``j``; the kernels of level ``j`` are upsampled a trous (``2 ** (j - 1)
- 1`` zeros between taps), the transform stays undecimated.

Kernels are applied by convolution (scipy.ndimage.convolve1d). An even-length
kernel is centred as IBSI-2's reference maps require: one zero is appended so
that it has an odd length and a true centre, which also makes flipping the
kernel equivalent to flipping the image.

Rotation invariance pools the responses of the 24 right-angle rotations of
the volume (4 in-plane rotations when filtering by slice). Filtering a
rotated image and rotating the response back is the same as filtering with
the rotated kernel, which for a separable kernel permutes the per-axis
kernels and flips some of them; rotations that give the same kernels are
computed once and weighted by how often they occur.
"""

import numpy as np
import pywt
from scipy import ndimage

from ._boundary import filter_axes, get_param
from ._config import flat_config, prepare
from ._laws import _rotations

__all__ = ["separable_wavelet_response"]

_FAMILY = "separable_wavelet"


def _centred_kernel(kernel):
    """Odd-length copy of ``kernel`` (a zero appended to an even one)."""
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.size % 2 == 0:
        kernel = np.append(kernel, 0.0)
    return kernel


def _a_trous(kernel, level):
    """``kernel`` a trous at ``level`` (2**(level-1) - 1 zeros between taps)."""
    step = 2 ** (level - 1)
    out = np.zeros((kernel.size - 1) * step + 1)
    out[::step] = kernel
    return out


def _pooled(volumes, pooling):
    """Pool ``(volume, count)`` pairs voxel-wise; the mean weights each by its count."""
    out, total = None, 0
    for volume, count in volumes:
        total += count
        if pooling == "mean":
            out = volume * count if out is None else out + volume * count
        elif out is None:
            out = np.array(volume, dtype=np.float64)
        else:
            (np.maximum if pooling == "max" else np.minimum)(out, volume, out=out)
    return out / total if pooling == "mean" else out


def _filter_chains(wavelet, filter_set, level):
    """Per letter (x, y(, z)): the kernels applied in turn, low-pass levels first."""
    try:
        bank = pywt.Wavelet(wavelet)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"filter config key 'wavelet': {wavelet!r} is not a PyWavelets "
            f"discrete wavelet ({err})") from None
    low = _centred_kernel(bank.dec_lo)
    high = _centred_kernel(bank.dec_hi)
    chains = []
    for letter in filter_set:
        last = low if letter == "L" else high
        chain = [_a_trous(low, j) for j in range(1, level)] + [_a_trous(last, level)]
        chains.append(tuple(chain))
    return chains


def _convolve_chain(volume, chain, axis, mode):
    for kernel in chain:
        volume = ndimage.convolve1d(volume, kernel, axis=axis, mode=mode, cval=0.0)
    return volume


def _responses(image, combos, axes, mode):
    """Yield ``(response, count)`` per distinct combination of per-axis kernel chains.

    The combinations are sorted by their keys, so consecutive ones share
    their leading axes; the partial result of each prefix is kept only while
    it is in use (at most one volume per axis in memory).
    """
    path = [((), image)]
    for key in sorted(combos):
        axis_chains, count = combos[key]
        depth = 0
        while depth + 1 < len(path) and path[depth + 1][0] == key[: depth + 1]:
            depth += 1
        del path[depth + 1:]
        volume = path[-1][1]
        for i in range(depth, len(axes)):
            volume = _convolve_chain(volume, axis_chains[i], axes[i], mode)
            path.append((key[: i + 1], volume))
        yield volume, count


def separable_wavelet_response(image, spacing, config):
    """Response map of an IBSI-2 separable (stationary) wavelet filter.

    Parameters
    ----------
    image : ndarray of shape (z, y, x)
        The image (SimpleITK's axis order); cast to float64.
    spacing : sequence of 3 float
        Voxel spacing (z, y, x) in mm. Separable wavelets work in voxels, so
        the spacing is only checked.
    config : dict
        The filter configuration, flat as
        :func:`~sklearn_medprep.filters.filter_image` takes it or a whole
        configurations.json test entry (parameters under ``filter``, see
        :func:`~sklearn_medprep.filters._config.flat_config`): ``family``
        ``"separable_wavelet"``, ``wavelet``
        (a PyWavelets name such as ``"db2"``), ``filter_set`` (``L``/``H``
        letters in the order x, y, z; two letters, x and y, when
        ``by_slice``), ``decomposition_level`` (default 1),
        ``stationary_undecimated`` (default True; False is refused),
        ``filter_per_axis`` (optional, must agree with ``filter_set``),
        ``boundary`` (``constant`` (default), ``nearest``, ``wrap`` or
        ``reflect``), ``by_slice`` (filter each axial slice in 2D, default
        False), ``rotation_invariance`` (default False) and ``pooling``
        (``mean``, ``max`` or ``min``; required with rotation invariance).

    Returns
    -------
    ndarray of float64, same shape as ``image``
        The response map.

    Raises
    ------
    ValueError
        If a configuration key is missing or invalid (the message names it),
        or the image is not a finite 3D numeric array.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((7, 8, 9))
    >>> image[3, 4, 4] = 1.0
    >>> config = {"filter": {"family": "separable_wavelet", "wavelet": "haar",
    ...                      "filter_set": "LLL", "decomposition_level": 1},
    ...           "boundary": "constant", "by_slice": False,
    ...           "rotation_invariance": False, "pooling": None}
    >>> response = separable_wavelet_response(image, (1.0, 1.0, 1.0), config)
    >>> response.shape, round(float(response.sum()), 6)
    ((7, 8, 9), 2.828427)
    """
    image, spacing, config = prepare(
        _separable_wavelet, image, spacing, flat_config(config), [_FAMILY])
    return _separable_wavelet(image, spacing, config)


def _separable_wavelet(image, spacing, config):
    """The family function: ``config`` flat, as :func:`.prepare` leaves it."""
    by_slice, invariant = config["by_slice"], config["rotation_invariance"]
    wavelet = get_param(config, "wavelet", "str")
    filter_set = get_param(config, "filter_set", "str")
    level = get_param(config, "decomposition_level", "positive_int", default=1)
    if not get_param(config, "stationary_undecimated", "bool", default=True):
        raise ValueError(
            "filter config key 'stationary_undecimated': only the stationary "
            "(undecimated) transform is implemented, got False")
    n_axes = 2 if by_slice else 3
    if len(filter_set) != n_axes or set(filter_set.upper()) - {"L", "H"}:
        raise ValueError(
            f"filter config key 'filter_set': {filter_set!r} is not {n_axes} letters "
            f"L or H (axes {'x, y: by_slice' if by_slice else 'x, y, z'})")
    per_axis = config.get("filter_per_axis")
    if per_axis is not None and per_axis != dict(zip("xyz", filter_set.upper())):
        raise ValueError(
            f"filter config key 'filter_per_axis': {per_axis!r} disagrees with "
            f"filter_set {filter_set!r}")
    # letters are in x, y(, z) order; array axes are (z,) y, x
    chains_xyz = _filter_chains(wavelet, filter_set.upper(), int(level))
    chains = chains_xyz[::-1]
    axes = filter_axes(by_slice)
    mode = config["boundary"]
    if invariant:
        rotations = _rotations(n_axes)
    else:
        rotations = [(tuple(range(n_axes)), (1,) * n_axes)]
    counts = {}
    for perm, signs in rotations:
        axis_chains = tuple(
            tuple(k[::-1] if s < 0 else k for k in chains[p])
            for p, s in zip(perm, signs)
        )
        key = tuple(tuple(k.tobytes() for k in chain) for chain in axis_chains)
        if key in counts:
            counts[key][1] += 1
        else:
            counts[key] = [axis_chains, 1]

    responses = _responses(image, counts, axes, mode)
    if not invariant:
        return np.asarray(next(responses)[0], dtype=np.float64)
    return _pooled(responses, config["pooling"])


_separable_wavelet.accepted_keys = frozenset(
    {"wavelet", "filter_set", "decomposition_level", "stationary_undecimated",
     "filter_per_axis"})
