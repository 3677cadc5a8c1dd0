"""Laplacian of Gaussian on the ROI's bounding box, bit for bit ITK's.

PyRadiomics' ``getLoGImage`` runs ITK's ``LaplacianRecursiveGaussianImageFilter``
(normalised across scale) on the whole image it is given. That filter sums,
over each axis ``d``, the second derivative along ``d`` smoothed along the
other axes: for a 3D image, 3 x 3 one-dimensional recursive Gaussian passes,
each over every voxel, the sum accumulated in float as ``total + pass /
spacing[d]**2`` (computed in double). A one-dimensional pass filters every line
along its axis on its own, so a pass need only run on the lines that later
passes read: after the pass along an axis, the image is cut to the ROI's box
along that axis. The first pass of each axis still reads the whole region (its
lines are the region's), the second about ``box / region`` of it, the third
less again: for brain1's LoG sigma 3 region, 4 region-sized passes' work
instead of 9.

:func:`log_image` chains SimpleITK's ``RecursiveGaussianImageFilter`` (the
class ITK's filter chains, with its float output) in ITK's order and sums as
ITK does, so that its box equals the box of ITK's filter on the same image bit
for bit (tests/radiomics/test_radiomics_log.py checks pixel types, sigmas, boxes at the
border and 2D). :func:`log_images` is PyRadiomics' ``getLoGImage`` with its
checks on the whole image's size and each sigma computed on the box.
"""

import logging

import numpy as np
import SimpleITK as sitk

__all__ = ["log_image", "log_images", "region"]

_RG = sitk.RecursiveGaussianImageFilter
# PyRadiomics' own logger: its warnings follow radiomics.setVerbosity
_LOGGER = logging.getLogger("radiomics.imageoperations")


def _pass(image, sigma, axis, order):
    recursive = _RG()
    recursive.SetNumberOfThreads(1)  # see region()
    recursive.SetSigma(float(sigma))
    recursive.SetNormalizeAcrossScale(True)
    recursive.SetDirection(int(axis))
    recursive.SetOrder(order)
    return recursive.Execute(image)


def region(image, index):
    """``image[index]`` (slices of step 1, SimpleITK x, y, z order) in one
    thread, or ``image`` itself where ``index`` covers it.

    The many small SimpleITK steps of a region's extraction each run in one
    thread: two threads per step only wait for each other on a loaded
    machine; the filters run beside the features instead
    (:mod:`sklearn_medprep.radiomics._crop`).
    """
    size = image.GetSize()
    if all(s.start == 0 and s.stop == n for s, n in zip(index, size)):
        return image
    cut = sitk.SliceImageFilter()
    cut.SetNumberOfThreads(1)
    cut.SetStart([int(s.start) for s in index])
    cut.SetStop([int(s.stop) for s in index])
    cut.SetStep([1] * len(index))
    return cut.Execute(image)


def _cut(image, axis, part):
    """``image`` cut to ``part`` along ``axis`` (whole along the others)."""
    index = [slice(0, n) for n in image.GetSize()]
    index[axis] = part
    return region(image, index)


def log_image(image, sigma, box):
    """``sitk.LaplacianRecursiveGaussian(image, sigma, True)[box]``, computed on
    the lines the box needs only.

    Parameters
    ----------
    image : SimpleITK.Image
        Scalar image, at least 4 voxels along every axis.
    sigma : float
        Gaussian sigma (mm).
    box : tuple of slice
        The region wanted, in SimpleITK (x, y, z) order, steps of 1.

    Returns
    -------
    SimpleITK.Image
        Float image of the box's size and geometry.

    Examples
    --------
    >>> import numpy as np, SimpleITK as sitk
    >>> from sklearn_medprep.radiomics._log import log_image
    >>> image = sitk.GetImageFromArray(
    ...     np.random.default_rng(0).normal(size=(12, 14, 16)).astype(np.float32))
    >>> box = (slice(5, 9), slice(6, 8), slice(4, 7))
    >>> itk = sitk.LaplacianRecursiveGaussian(image, 1.5, True)[box]
    >>> bool(np.array_equal(sitk.GetArrayFromImage(log_image(image, 1.5, box)),
    ...                     sitk.GetArrayFromImage(itk)))
    True
    """
    ndim = image.GetDimension()
    spacing = image.GetSpacing()
    total = None
    for axis in range(ndim):
        out = _cut(_pass(image, sigma, axis, _RG.SecondOrder), axis, box[axis])
        for other in range(ndim):
            if other != axis:
                out = _cut(_pass(out, sigma, other, _RG.ZeroOrder), other,
                           box[other])
        values = sitk.GetArrayViewFromImage(out)
        if total is None:
            total = np.zeros(values.shape, values.dtype)
        # ITK: static_cast<float>(a + b * (1.0 / sqr(spacing))), in double
        scale = 1.0 / (spacing[axis] * spacing[axis])
        total = (total.astype(np.float64) + values.astype(np.float64) * scale
                 ).astype(values.dtype)
    result = sitk.GetImageFromArray(total, isVector=False)
    result.CopyInformation(out)
    return result


def log_images(image, box, full_size, **kwargs):
    """PyRadiomics' ``getLoGImage`` on a region, each LoG image on ``box`` only.

    The size checks (at least 4 voxels per axis; ``sigma / spacing + 1`` at
    most the size) are PyRadiomics' on the whole image (``full_size``), so
    that a region never drops a sigma the whole image keeps.

    Parameters
    ----------
    image : SimpleITK.Image
        The region (exact for LoG: see :mod:`sklearn_medprep.radiomics._crop`).
    box : tuple of slice
        The ROI's bounding box in the region, SimpleITK (x, y, z) order.
    full_size : tuple of int
        Size of the whole image.
    **kwargs
        Settings of the image type (``sigma``: list of floats).

    Yields
    ------
    (SimpleITK.Image, str, dict)
        LoG image on the box, its image type name and ``kwargs``, as
        PyRadiomics' generator yields them.
    """
    size = np.array(full_size)
    spacing = np.array(image.GetSpacing())
    if np.min(size) < 4:
        _LOGGER.warning("Image too small to apply LoG filter, size: %s", size)
        return
    for sigma in kwargs.get("sigma", []):
        if sigma > 0.0:
            if np.all(size >= np.ceil(sigma / spacing) + 1):
                name = "log-sigma-{}-mm-3D".format(str(sigma).replace(".", "-"))
                yield log_image(image, sigma, box), name, kwargs
            else:
                _LOGGER.warning(
                    "applyLoG: sigma(%g)/spacing(%s) + 1 must be greater than "
                    "the size(%s) of the inputImage", sigma, spacing, size)
        else:
            _LOGGER.warning("applyLoG: sigma must be greater than 0.0: %g", sigma)
