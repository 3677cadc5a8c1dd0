"""IBSI-2 Laplacian of Gaussian (test 2), as IBSI defines it.

The kernel is the Laplacian of a Gaussian of width ``sigma_mm / spacing`` voxels
per axis, truncated at ``kernel_truncate_sigmas`` (IBSI: 4) widths, i.e. a support
of ``1 + 2 * floor(truncate * sigma_voxels + 0.5)`` voxels per axis, with the
derivatives taken in voxel units: IBSI's formula sampled on the voxel grid, with
the Gaussian's own normalisation ``1 / (sqrt(2 pi) sigma)`` per axis (as mirp, the
reference implementation, samples it), not renormalised to sum 1 on the
truncated support as scipy's ``gaussian_laplace`` does (that would scale the map
by up to ``1 + 1e-4`` at 4 widths, by 3 to 9% at 2 widths, measured for
widths of 0.75 to 3 voxels).

The kernel is a sum of separable terms, ``sum_a G''_a * prod_{b != a} G_b`` of
sampled 1D Gaussians (:func:`gaussian_kernels`); :func:`log_response` applies it
in 1D passes (spatial domain), the Riesz-transformed LoG builds the whole kernel
(:func:`log_kernel`) for the Fourier domain. Both are the same sampled kernel:
``tests/filters/test_wavelets_ibsi2.py`` compares the two responses.

PyRadiomics' ``LoG`` image type differs in scale: ITK's
``LaplacianRecursiveGaussianImageFilter`` takes derivatives in mm and normalises
across scale (times ``sigma_mm**2``), so its response is ``sigma_voxels**2``
times IBSI's (``(sigma_mm / spacing)**2``: 2.25 for IBSI test 2.a, 6.25 for 2.b,
on 2 mm voxels) besides the recursive Gaussian's approximation.
"""

import numpy as np
from scipy import ndimage

from ._boundary import filter_axes, get_param

__all__ = ["gaussian_kernels", "log_kernel", "log_response"]


def gaussian_kernels(sigma_voxels, truncate):
    """Sampled 1D Gaussian and its second derivative (IBSI's normalisation).

    Parameters
    ----------
    sigma_voxels : float
        Standard deviation, in voxels.
    truncate : float
        The kernel radius is ``floor(truncate * sigma + 0.5)`` voxels.

    Returns
    -------
    gauss, second : ndarray of float64
        ``g(x) = exp(-x**2 / (2 sigma**2)) / (sqrt(2 pi) sigma)`` and
        ``g''(x) = (x**2 / sigma**2 - 1) / sigma**2 * g(x)`` at the integer
        offsets ``x`` from ``-radius`` to ``radius``.

    Examples
    --------
    >>> gauss, second = gaussian_kernels(1.0, 4.0)
    >>> gauss.shape, round(float(gauss.sum()), 4), bool(second[4] < 0)
    ((9,), 1.0, True)
    """
    sigma = float(sigma_voxels)
    radius = int(np.floor(truncate * sigma + 0.5))
    u2 = (np.arange(-radius, radius + 1) / sigma) ** 2
    gauss = np.exp(-0.5 * u2) / (np.sqrt(2.0 * np.pi) * sigma)
    return gauss, (u2 - 1.0) / sigma**2 * gauss


def log_kernel(sigma_voxels, truncate, ndim):
    """Laplacian-of-Gaussian kernel (IBSI-2 definition) on the voxel grid.

    Parameters
    ----------
    sigma_voxels : sequence of float
        Standard deviation per axis, in voxels.
    truncate : float
        The kernel radius per axis is ``floor(truncate * sigma + 0.5)``.
    ndim : int
        Number of axes (2 or 3).

    Returns
    -------
    ndarray
        The kernel: the Laplacian of a normalised Gaussian,
        ``sum_a (u_a**2 - 1) / sigma_a**2 * G`` with ``u_a = x_a / sigma_a``
        (for an isotropic sigma, ``-1/sigma**2 (d - |u|**2) G``), as the sum of
        the outer products of :func:`gaussian_kernels`.

    Examples
    --------
    >>> k = log_kernel((1.5, 1.5, 1.5), 4.0, 3)
    >>> k.shape, bool(k[6, 6, 6] < 0)
    ((13, 13, 13), True)
    """
    kernels = [gaussian_kernels(s, truncate) for s in list(sigma_voxels)[:ndim]]
    out = 0.0
    for a in range(ndim):
        term = np.ones(())
        for b, (gauss, second) in enumerate(kernels):
            term = np.multiply.outer(term, second if a == b else gauss)
        out = out + term
    return out


def log_response(image, spacing, config):
    """Laplacian-of-Gaussian response map (IBSI-2 scale, not PyRadiomics').

    Parameters
    ----------
    image : ndarray of float64, shape (z, y, x)
    spacing : ndarray of shape (3,)
        Voxel spacing (z, y, x) in mm.
    config : dict
        ``sigma_mm`` (positive), ``kernel_truncate_sigmas`` (default 4.0),
        ``boundary``, ``by_slice`` (2D Laplacian in each xy slice).

    Returns
    -------
    ndarray of float64, same shape as ``image``

    Notes
    -----
    The kernel is unchanged by every right-angle rotation (on isotropic
    voxels), so ``rotation_invariance`` with any pooling gives the same map.
    """
    sigma_mm = get_param(config, "sigma_mm", "positive")
    truncate = get_param(config, "kernel_truncate_sigmas", "positive", default=4.0)
    mode = config["boundary"]
    axes = filter_axes(config["by_slice"])
    kernels = {axis: gaussian_kernels(sigma_mm / spacing[axis], truncate)
               for axis in axes}

    def smooth(array, axis, order=0):
        kernel = kernels[axis][1 if order else 0]  # symmetric: correlation
        return ndimage.correlate1d(array, kernel, axis=axis, mode=mode, cval=0.0)

    if len(axes) == 2:
        return (smooth(smooth(image, 2), 1, order=2)
                + smooth(smooth(image, 1), 2, order=2))
    # sum_i G''_i prod_{j != i} G_j in 8 passes instead of 9: G_x is shared
    along_x = smooth(image, 2)
    out = smooth(smooth(along_x, 1), 0, order=2)
    out += smooth(smooth(along_x, 0), 1, order=2)
    out += smooth(smooth(smooth(image, 0), 1), 2, order=2)
    return out


log_response.accepted_keys = frozenset({"sigma_mm", "kernel_truncate_sigmas"})
