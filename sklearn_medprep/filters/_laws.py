"""IBSI-2 Laws kernels (test 3): separable 1D kernels, rotation invariance, energy.

A kernel name lists one 1D kernel per IBSI axis in the order x, y(, z):
``"E5L5S5"`` is E5 along x (numpy axis 2 of a (z, y, x) array), L5 along y
(axis 1) and S5 along z (axis 0); a 2-letter-pair name (``"L5S5"``) is a 2D
kernel, applied by slice. The 1D kernels are normalised to unit L2 norm and
applied by convolution (kernel flipped), one 1D pass per axis, in float64.

Rotation invariance applies the kernel in the 24 right-angle rotations of the
cube (3D) or the 4 in-plane right-angle rotations (2D) and pools the responses
voxel-wise (max, min or mean). A right-angle rotation of a separable kernel is
a permutation of its 1D kernels among the axes, some of them reversed; every
boundary condition is symmetric under reversal, and reversing a symmetric 1D
kernel (L, S, R) changes nothing while reversing an antisymmetric one (E, W)
negates the response. So the 24 responses are the 6 axis permutations (2 in 2D)
with signs, and only those are computed.

The energy map is the mean of the absolute (pooled) response over a
``2 * energy_distance_voxels + 1`` cube (square by slice) with the same boundary
condition.
"""

import itertools
import re

import numpy as np
from scipy import ndimage

from ._boundary import get_param

__all__ = ["LAWS_KERNELS", "laws_response"]

_RAW = {
    "L3": [1, 2, 1],
    "E3": [-1, 0, 1],
    "S3": [-1, 2, -1],
    "L5": [1, 4, 6, 4, 1],
    "E5": [-1, -2, 0, 2, 1],
    "S5": [-1, 0, 2, 0, -1],
    "W5": [-1, 2, 0, -2, 1],
    "R5": [1, -4, 6, -4, 1],
}

#: IBSI's 1D Laws kernels, normalised to unit L2 norm
LAWS_KERNELS = {
    name: np.asarray(k, dtype=np.float64) / np.linalg.norm(k)
    for name, k in _RAW.items()
}

_ANTISYMMETRIC = {name for name, k in LAWS_KERNELS.items() if np.allclose(k, -k[::-1])}


def _parse_kernel(name, by_slice):
    parts = re.findall(r"[A-Z]\d", name.upper()) if isinstance(name, str) else []
    if not parts or "".join(parts) != (name.upper() if isinstance(name, str) else None):
        raise ValueError(
            f"filter config key 'kernel': {name!r} is not a sequence of Laws kernels "
            f"{sorted(LAWS_KERNELS)} (one per axis x, y[, z], e.g. 'E5L5S5')")
    unknown = [p for p in parts if p not in LAWS_KERNELS]
    if unknown:
        raise ValueError(
            f"filter config key 'kernel': {unknown[0]!r} in {name!r} is not one of "
            f"{sorted(LAWS_KERNELS)}")
    wanted = 2 if by_slice else 3
    if len(parts) != wanted:
        raise ValueError(
            f"filter config key 'kernel': {name!r} has {len(parts)} 1D kernels, "
            f"{'by_slice (2D)' if by_slice else 'a 3D filter'} needs {wanted} "
            "(one per axis x, y" + ("" if by_slice else ", z") + ")")
    return parts


def _rotations(ndim):
    """Right-angle rotations as (permutation, signs), determinant +1 only.

    Axis i takes the kernel of axis perm[i], reversed where signs[i] is -1.
    """
    out = []
    for perm in itertools.permutations(range(ndim)):
        parity = np.linalg.det(np.eye(ndim)[list(perm)])
        for signs in itertools.product((1, -1), repeat=ndim):
            if round(parity * np.prod(signs)) == 1:
                out.append((perm, signs))
    return out


def _separable(image, kernels, axes, mode):
    out = image
    for kernel, axis in zip(kernels, axes):
        out = ndimage.convolve1d(out, LAWS_KERNELS[kernel], axis=axis, mode=mode)
    return out


def laws_response(image, spacing, config):
    """Laws filter response map (or energy map).

    Parameters
    ----------
    image : ndarray of float64, shape (z, y, x)
    spacing : ndarray of shape (3,)
        Unused (Laws kernels are in voxels); kept for the common signature.
    config : dict
        ``kernel`` (e.g. ``"E5L5S5"``: x, y, z), ``energy_map`` (default False),
        ``energy_distance_voxels`` (needed with the energy map), ``boundary``,
        ``by_slice``, ``rotation_invariance``, ``pooling``.

    Returns
    -------
    ndarray of float64, same shape as ``image``
    """
    by_slice = config["by_slice"]
    # kernel letters in IBSI order x, y(, z); numpy axes reversed: x is the last
    parts = _parse_kernel(get_param(config, "kernel", "str"), by_slice)
    axes = (2, 1) if by_slice else (2, 1, 0)
    energy = get_param(config, "energy_map", "bool", default=False)
    _check_descriptive(config, parts)
    mode = config["boundary"]
    if not config["rotation_invariance"]:
        response = _separable(image, parts, axes, mode)
    else:
        cache, responses = {}, []
        for perm, signs in _rotations(len(parts)):
            kernels = tuple(parts[p] for p in perm)
            if kernels not in cache:
                cache[kernels] = _separable(image, kernels, axes, mode)
            sign = np.prod(
                [s for s, p in zip(signs, perm) if parts[p] in _ANTISYMMETRIC])
            responses.append((kernels, int(sign)))
        response = _pool(cache, responses, config["pooling"])
    if energy:
        distance = get_param(config, "energy_distance_voxels", "nonnegative_int")
        response = np.abs(response)
        for axis in axes:
            response = ndimage.uniform_filter1d(
                response, 2 * distance + 1, axis=axis, mode=mode)
    return response


def _check_descriptive(config, parts):
    """configurations.json's restatements of the kernel must agree with it."""
    per_axis = config.get("kernel_per_axis")
    if per_axis is not None:
        expected = dict(zip("xyz", parts))
        if {k: str(v).upper() for k, v in dict(per_axis).items()} != expected:
            raise ValueError(
                f"filter config key 'kernel_per_axis': {per_axis!r} contradicts "
                f"kernel {config['kernel']!r} ({expected})")
    if config.get("kernels_normalised_to_unit_l2_norm") is False:
        raise ValueError(
            "filter config key 'kernels_normalised_to_unit_l2_norm': IBSI's Laws "
            "kernels are normalised to unit L2 norm; False is not supported")
    window = config.get("energy_window_voxels")
    if window is not None:
        distance = config.get("energy_distance_voxels")
        if distance is None or window != 2 * distance + 1:
            raise ValueError(
                f"filter config key 'energy_window_voxels': {window!r} is not "
                f"2 * energy_distance_voxels + 1 (energy_distance_voxels={distance!r})")


def _pool(cache, responses, method):
    if method == "mean":
        out = sum(sign * cache[k] for k, sign in responses)
        return out / len(responses)
    signed = {}
    for kernels, sign in responses:
        if (kernels, sign) not in signed:
            signed[kernels, sign] = cache[kernels] if sign > 0 else -cache[kernels]
    reduce = np.maximum if method == "max" else np.minimum
    values = iter(signed.values())
    out = next(values).copy()
    for value in values:
        reduce(out, value, out=out)
    return out


laws_response.accepted_keys = frozenset({
    "kernel", "energy_map", "energy_distance_voxels",
    # configurations.json's restatements, checked against the above
    "kernel_per_axis", "kernels_normalised_to_unit_l2_norm", "energy_window_voxels",
})
