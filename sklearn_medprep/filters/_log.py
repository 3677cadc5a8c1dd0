"""IBSI-2 Laplacian of Gaussian (test 2), as IBSI defines it.

The kernel is the Laplacian of a Gaussian of width ``sigma_mm / spacing`` voxels
per axis, truncated at ``kernel_truncate_sigmas`` (IBSI: 4) widths, i.e. a support
of ``1 + 2 * floor(truncate * sigma_voxels + 0.5)`` voxels per axis, with the
derivatives taken in voxel units. It is applied separably, as
``sum_i G''_i * prod_{j != i} G_j`` of sampled 1D Gaussians (scipy's
``gaussian_laplace``), in float64.

PyRadiomics' ``LoG`` image type differs in scale: ITK's
``LaplacianRecursiveGaussianImageFilter`` takes derivatives in mm and normalises
across scale (times ``sigma_mm**2``), so its response is ``sigma_voxels**2``
times IBSI's (``(sigma_mm / spacing)**2``: 2.25 for IBSI test 2.a, 6.25 for 2.b,
on 2 mm voxels) besides the recursive Gaussian's approximation.
"""

from scipy import ndimage

from ._boundary import filter_axes, get_param

__all__ = ["log_response"]


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
    sigmas = {axis: sigma_mm / spacing[axis] for axis in axes}

    def smooth(array, axis, order=0):
        return ndimage.gaussian_filter1d(array, sigmas[axis], axis=axis, order=order,
                                         mode=mode, truncate=truncate)

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
