"""Exact filtered extraction on a region around the ROI, one image type at a time.

PyRadiomics filters the *whole* image for every image type and only then crops
to the ROI; on a CT of 512 x 512 x 100 voxels with a small tumour almost all of
that work is thrown away. Here each enabled image type is extracted by its own
PyRadiomics call on the smallest region that gives the same values as the
full image:

================  ==========================================  ==============
image type        what a ROI voxel's value depends on          region
================  ==========================================  ==============
Original          itself                                      bounding box
Gradient          neighbours at distance 1                    box + 2
LBP2D             in-slice neighbours within ``lbp2DRadius``  box + R + 1
Wavelet           each of ``start_level + level`` undecimated  box + levels x
                  passes reads ``dec_len`` neighbours;        filter length
                  periodic (wrap) extension at the image
                  border
LoG               recursive (IIR) Gaussian: every voxel of    box + 20 sigma
                  the line, with weights decaying
                  exponentially (below 1e-15 beyond ~20
                  sigma); border initial conditions
Square,           itself and one whole-image constant,        box + 1, with
SquareRoot,       ``max |x|``                                 the constant
Logarithm,                                                    carried in
Exponential                                                   (below)
LBP3D             spherical harmonics over the whole image    never cropped
================  ==========================================  ==============

Along an axis where the region would reach the image border, the whole axis
is kept, so that border handling (wrap-around of the wavelet, initial
conditions of the recursive Gaussian, skimage's LBP border) is the full
image's. For the Square family the whole-image constant ``max |x|`` is carried
into the region by copying the voxel that holds it onto a voxel of the margin
outside the ROI (a voxel no feature reads): the filter then computes the same
constant and the same value at every ROI voxel. LoG is the only type that is
exact to rounding rather than bit for bit (the neglected tail is below 1e-15 of
the response); tests/test_radiomics_crop.py checks every type against
PyRadiomics' full-image result at rel <= 1e-9.

Shape features are computed by the first call only; the Square family shares
one call, each LoG sigma has its own (and its own region); features come back in
PyRadiomics' order (shape, then image types in the order of the settings).
"""

import copy
import math

import numpy as np
import SimpleITK as sitk

__all__ = ["CropPlan", "crop_plan"]

#: LoG region half-width in sigmas (see the module docstring)
LOG_SUPPORT_SIGMAS = 20.0

_SQUARE_FAMILY = ("Square", "SquareRoot", "Logarithm", "Exponential")
_SHAPE_CLASSES = ("shape", "shape2D")


def _type_margin(name, options, spacing):
    """Margin (voxels, per axis in SimpleITK x, y, z order) of one image type,
    or None where cropping cannot be exact.
    """
    ndim = len(spacing)
    if name == "Original":
        return (0,) * ndim
    if name == "Gradient":
        return (2,) * ndim
    if name in _SQUARE_FAMILY:
        return (1,) * ndim
    if name == "LBP2D":
        radius = float(options.get("lbp2DRadius", 1))
        return (int(math.ceil(radius)) + 1,) * ndim
    if name == "Wavelet":
        import pywt

        wavelet = options.get("wavelet", "coif1")
        length = pywt.Wavelet(wavelet).dec_len
        passes = int(options.get("start_level", 0)) + int(options.get("level", 1))
        return (passes * length + 1,) * ndim
    if name == "LoG":
        sigmas = [float(s) for s in options.get("sigma", []) if float(s) > 0]
        if not sigmas:
            return (0,) * ndim
        sigma = max(sigmas)
        return tuple(
            int(math.ceil(LOG_SUPPORT_SIGMAS * sigma / float(s))) for s in spacing
        )
    return None


def crop_plan(params, *, include_diagnostics=False):
    """Return a :class:`CropPlan` for these settings, or None where none applies.

    None where a whole-image step precedes the filters (normalisation,
    resampling, mask correction, pre-cropping), diagnostics are requested
    (they describe the whole image) or extraction is voxel-based.

    Parameters
    ----------
    params : dict
        Validated PyRadiomics parameters.
    include_diagnostics : bool, default=False
        Diagnostics requested.

    Returns
    -------
    CropPlan or None

    Examples
    --------
    >>> from sklearn_medprep._radiomics_crop import crop_plan
    >>> crop_plan({"imageType": {"Square": {}, "LoG": {"sigma": [1.0]}}})
    CropPlan(['Square', 'LoG'])
    >>> crop_plan({"setting": {"normalize": True}}) is None
    True
    """
    if include_diagnostics:
        return None
    options = {**(params.get("setting") or {}), **(params.get("voxelSetting") or {})}
    if options.get("normalize") or options.get("resampledPixelSpacing") is not None:
        return None
    if options.get("preCrop") or options.get("correctMask"):
        return None
    image_types = params.get("imageType") or {"Original": {}}
    return CropPlan(list(image_types))


class CropPlan:
    """Per-image-type extraction on exact crops (see the module docstring).

    Parameters
    ----------
    image_types : list of str
        Enabled image types, in the order of the settings.
    """

    def __init__(self, image_types):
        self.image_types = list(image_types)

    def __repr__(self):
        return f"CropPlan({self.image_types!r})"

    def execute(self, extractor, image, mask, label):
        """Return what ``extractor.execute(image, mask, label=label)`` returns.

        Parameters
        ----------
        extractor : radiomics.featureextractor.RadiomicsFeatureExtractor
            The extractor of the full settings (not modified).
        image, mask : SimpleITK.Image
            Checked image and mask (same geometry, label present).
        label : int
            ROI label.

        Returns
        -------
        collections.OrderedDict
        """
        bounds = _bounding_box(sitk.GetArrayViewFromImage(mask), label)
        out = None
        for position, (image_types, margin) in enumerate(
            _calls(extractor.enabledImagetypes, extractor.settings, image.GetSpacing())
        ):
            sub = copy.copy(extractor)
            sub.enabledImagetypes = image_types
            if position > 0:  # shape once, from the first call
                sub.enabledFeatures = {
                    cls: features for cls, features in extractor.enabledFeatures.items()
                    if cls not in _SHAPE_CLASSES
                }
                if not sub.enabledFeatures:
                    continue
            part_image, part_mask = image, mask
            if margin is not None and bounds is not None:
                part_image, part_mask = _crop_region(image, mask, bounds, margin)
                if any(name in _SQUARE_FAMILY for name in image_types):
                    part_image, part_mask = _carry_maximum(
                        image, mask, part_image, part_mask, label, bounds, margin
                    )
            result = sub.execute(part_image, part_mask, label=int(label))
            if out is None:
                out = result
            else:
                out.update(result)
        return out


def _calls(enabled, settings, spacing):
    """``[(image types, margin), ...]`` in the settings' order: one call per LoG
    sigma (each its own region), consecutive types of one region together (the
    Square family shares one call).
    """
    calls = []
    for name, custom in enabled.items():
        custom = custom or {}
        options = {**settings, **custom}
        if name == "LoG" and len(options.get("sigma", [])) > 1:
            parts = [{**custom, "sigma": [sigma]} for sigma in options["sigma"]]
        else:
            parts = [enabled[name]]
        for part in parts:
            margin = _type_margin(name, {**settings, **(part or {})}, spacing)
            group = name in _SQUARE_FAMILY
            if calls and group and calls[-1][2] and calls[-1][1] == margin:
                calls[-1][0][name] = part
            else:
                calls.append(({name: part}, margin, group))
    return [(image_types, margin) for image_types, margin, _ in calls]


def _bounding_box(mask_array, label):
    """``[(lo, hi), ...]`` in array (z, y, x) order of ``mask == label``, or None."""
    roi = mask_array == label
    bounds = []
    for axis in range(roi.ndim):
        other = tuple(a for a in range(roi.ndim) if a != axis)
        hit = np.flatnonzero(roi.any(axis=other))
        if hit.size == 0:
            return None
        bounds.append((int(hit[0]), int(hit[-1])))
    return bounds


def _region(size, bounds, margin):
    """Slices in SimpleITK (x, y, z) order; a whole axis where the region would
    reach the image border.
    """
    index = []
    for dim, (lo, hi) in enumerate(reversed(bounds)):
        start, stop = lo - margin[dim], hi + margin[dim] + 1
        if margin[dim] > 0 and (start <= 0 or stop >= size[dim]):
            start, stop = 0, size[dim]
        index.append(slice(max(start, 0), min(stop, size[dim])))
    return tuple(index)


def _crop_region(image, mask, bounds, margin):
    index = _region(mask.GetSize(), bounds, margin)
    if all(s.start == 0 and s.stop == n for s, n in zip(index, mask.GetSize())):
        return image, mask
    return image[index], mask[index]


def _carry_maximum(image, mask, part_image, part_mask, label, bounds, margin):
    """Put the whole image's ``max |x|`` into the region, outside the ROI."""
    if part_image.GetSize() == image.GetSize():
        return part_image, part_mask

    def extreme(array):  # the value of largest magnitude (no integer overflow)
        high, low = array.max(), array.min()
        return high if abs(float(high)) >= abs(float(low)) else low

    value = extreme(sitk.GetArrayViewFromImage(image))
    array = sitk.GetArrayFromImage(part_image)
    if abs(float(extreme(array))) == abs(float(value)):
        return part_image, part_mask  # the region holds it already
    free = np.argwhere(sitk.GetArrayViewFromImage(part_mask) != label)
    if free.size == 0:  # the ROI fills the region: no room, keep the image
        return image, mask
    array[tuple(free[0])] = value
    carried = sitk.GetImageFromArray(array, isVector=False)
    carried.CopyInformation(part_image)
    return carried, part_mask
