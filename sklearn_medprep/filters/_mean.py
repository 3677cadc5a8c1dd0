"""IBSI-2 mean filter (test 1): the average over a cube (3D) or square (2D) window."""

from scipy import ndimage

from ._boundary import filter_axes, get_param

__all__ = ["mean_response"]


def mean_response(image, spacing, config):
    """Mean filter response map.

    Parameters
    ----------
    image : ndarray of float64, shape (z, y, x)
    spacing : ndarray of shape (3,)
        Unused (the window is in voxels); kept for the common signature.
    config : dict
        ``kernel_size_voxels`` (odd positive int, the window's side),
        ``boundary``, ``by_slice`` (2D window in each xy slice).

    Returns
    -------
    ndarray of float64, same shape as ``image``

    Notes
    -----
    The kernel is unchanged by every right-angle rotation (on isotropic
    voxels), so ``rotation_invariance`` with any pooling gives the same map.
    """
    size = get_param(config, "kernel_size_voxels", "positive_int")
    if size % 2 == 0:
        raise ValueError(
            f"filter config key 'kernel_size_voxels': expected an odd size (the "
            f"window is centred on the voxel), got {size}")
    out = image
    # separable: one running mean per axis, exact in float64
    for axis in filter_axes(config["by_slice"]):
        out = ndimage.uniform_filter1d(out, size, axis=axis, mode=config["boundary"])
    return out


mean_response.accepted_keys = frozenset({"kernel_size_voxels"})
