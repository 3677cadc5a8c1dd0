"""IBSI-2 Gabor filter (test 4): a 2D complex kernel per plane, orientations pooled.

Kernel, in the plane's physical coordinates (mm, centred on the voxel), with the
plane's first axis as y and its second as x (for the axial plane of a (z, y, x)
array: y = numpy axis 1, x = numpy axis 2, IBSI's x and y)::

    x' =  x cos(theta) + y sin(theta)
    y' = -x sin(theta) + y cos(theta)
    g  = exp(-(x'^2 + gamma^2 y'^2) / (2 sigma^2)) * exp(i 2 pi x' / lambda)

with ``sigma = sigma_mm`` and ``lambda = lambda_mm`` (on isotropic voxels the
same as ``sigma_mm / spacing`` voxels, IBSI's convention). The kernel is not
truncated by sigma: as in mirp it spans ``1 + 2 * floor(n / 2)`` voxels along
both plane axes, ``n`` the plane's larger extent. The response is the modulus of
the complex convolution (``"real"``, ``"imaginary"``, ``"angle"`` also
available). Orientations are ``theta_deg + k * theta_step_deg`` over the full
360 degrees when ``theta_step_deg`` is given, pooled voxel-wise.

Planes: by slice, or in 3D without rotation invariance, the kernel runs in each
axial (xy) slice; with rotation invariance in 3D it runs in the three orthogonal
planes (xy, xz, yz) and the responses are pooled over orientations and planes
together.

The convolution is exact (not circular): each plane is padded by the kernel's
radius with the boundary condition and convolved by FFT; the image's FFT is
computed once per plane and slab of slices and reused for every orientation.
"""

import numpy as np
from scipy import fft

from ._boundary import get_param, pad

__all__ = ["gabor_response"]

_RESPONSES = ("modulus", "real", "imaginary", "angle")
# voxels of complex128 FFT held at once (bounds memory on large volumes)
_SLAB_VOXELS = 2**24


def _kernel(size, step, sigma, lambda_, gamma, theta):
    """Complex Gabor kernel of ``size`` (rows = y, columns = x) voxels."""
    r_y, r_x = size[0] // 2, size[1] // 2
    y = (np.arange(size[0]) - r_y)[:, None] * step[0]
    x = (np.arange(size[1]) - r_x)[None, :] * step[1]
    xr = x * np.cos(theta) + y * np.sin(theta)
    yr = -x * np.sin(theta) + y * np.cos(theta)
    return np.exp(-(xr**2 + gamma**2 * yr**2) / (2.0 * sigma**2)
                  + 1j * 2.0 * np.pi * xr / lambda_)


def _plane_responses(image, spacing, plane, thetas, params, mode, response):
    """Yield the response map of every orientation in ``plane`` (two numpy axes)."""
    a, b = plane
    stack = ({0, 1, 2} - set(plane)).pop()
    radius = max(image.shape[a], image.shape[b]) // 2
    size = (2 * radius + 1, 2 * radius + 1)
    widths = [(0, 0)] * 3
    widths[a] = widths[b] = (radius, radius)
    padded = pad(image, widths, mode)
    shape = [fft.next_fast_len(padded.shape[a]), fft.next_fast_len(padded.shape[b])]
    kernels = []
    for theta in thetas:
        kernel = _kernel(size, (spacing[a], spacing[b]), *params, theta)
        # embedded with its centre at the origin: circular = linear convolution
        # on the region of interest, which never reaches the wrapped part
        full = np.zeros(shape, dtype=np.complex128)
        full[: size[0], : size[1]] = kernel
        full = np.roll(full, (-radius, -radius), axis=(0, 1))
        kernels.append(fft.fft2(full))
    outputs = [np.empty(image.shape) for _ in thetas]
    per_slice = shape[0] * shape[1]
    slab = max(1, _SLAB_VOXELS // per_slice)
    keep = [slice(None)] * 3
    keep[a] = slice(radius, radius + image.shape[a])
    keep[b] = slice(radius, radius + image.shape[b])
    for start in range(0, image.shape[stack], slab):
        part = [slice(None)] * 3
        part[stack] = slice(start, min(start + slab, image.shape[stack]))
        spectrum = fft.fft2(padded[tuple(part)], s=shape, axes=(a, b))
        # broadcast the 2D kernel spectrum along the stack axis
        expand = tuple(np.newaxis if i == stack else slice(None) for i in range(3))
        for kernel_f, out in zip(kernels, outputs):
            conv = fft.ifft2(spectrum * kernel_f[expand], axes=(a, b))[tuple(keep)]
            out[tuple(part)] = _as_response(conv, response)
    yield from outputs


def _as_response(conv, response):
    if response == "modulus":
        return np.abs(conv)
    if response == "real":
        return conv.real
    if response == "imaginary":
        return conv.imag
    return np.angle(conv)


def gabor_response(image, spacing, config):
    """Gabor filter response map, orientations (and planes) pooled.

    Parameters
    ----------
    image : ndarray of float64, shape (z, y, x)
    spacing : ndarray of shape (3,)
        Voxel spacing (z, y, x) in mm.
    config : dict
        ``sigma_mm``, ``lambda_mm``, ``gamma`` (positive), ``theta_deg``
        (default 0), ``theta_step_deg`` (optional: orientations over 360
        degrees), ``response`` (default ``"modulus"``), ``boundary``,
        ``by_slice``, ``rotation_invariance`` (3D: three planes), ``pooling``
        (needed with several orientations or planes).

    Returns
    -------
    ndarray of float64, same shape as ``image``
    """
    sigma = get_param(config, "sigma_mm", "positive")
    lambda_ = get_param(config, "lambda_mm", "positive")
    gamma = get_param(config, "gamma", "positive")
    theta = get_param(config, "theta_deg", "number", default=0.0)
    step = get_param(config, "theta_step_deg", "positive", default=None)
    response = get_param(config, "response", "str", default="modulus",
                         choices=_RESPONSES)
    if step is None:
        thetas_deg = [theta]
    else:
        count = int(np.ceil(360.0 / step - 1e-9))
        thetas_deg = [theta + k * step for k in range(count)]
    thetas = np.deg2rad(thetas_deg)
    if config["rotation_invariance"] and not config["by_slice"]:
        planes = [(1, 2), (0, 2), (0, 1)]
    else:
        planes = [(1, 2)]
    pooling = config.get("pooling")
    if len(thetas) * len(planes) > 1 and pooling is None:
        raise ValueError(
            f"filter config key 'pooling': {len(thetas)} orientations x {len(planes)} "
            "planes need a pooling method ('max', 'min' or 'mean')")
    out, count = None, 0
    for plane in planes:
        for resp in _plane_responses(image, spacing, plane, thetas,
                                     (sigma, lambda_, gamma), config["boundary"],
                                     response):
            count += 1
            if out is None:
                out = resp
            elif pooling == "max":
                np.maximum(out, resp, out=out)
            elif pooling == "min":
                np.minimum(out, resp, out=out)
            else:
                out += resp
    if pooling == "mean":
        out /= count
    return out


gabor_response.accepted_keys = frozenset(
    {"sigma_mm", "lambda_mm", "gamma", "theta_deg", "theta_step_deg", "response"})
