"""Exact filtered extraction on a region around the ROI, one image type at a time.

PyRadiomics filters the *whole* image for every image type and only then crops
to the ROI; on a CT of 512 x 512 x 100 voxels with a small tumour almost all of
that work is thrown away. Here each enabled image type is filtered on the
smallest region that gives the same values as the full image:

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
                  the line, with weights decaying         (3 voxels at
                  exponentially (below 1e-12 beyond 20    least)
                  sigma); each line's ends extended as
                  constants
Square,           itself and one whole-image constant,        box + 1, with
SquareRoot,       ``max |x|``                                 the constant
Logarithm,                                                    carried in
Exponential                                                   (below)
LBP3D             spherical harmonics over the whole image    never cropped
================  ==========================================  ==============

A region is clipped at the image border: there the border handling (the
recursive Gaussian's constant extension of each line, skimage's LBP border)
is the full image's own. The wavelet wraps around instead, so along an axis
where its region would reach the border the whole axis is kept. For the
Square family the whole-image constant ``max |x|`` is carried into the region
by copying the voxel that holds it onto a voxel of the margin outside the ROI
(a voxel no feature reads): the filter then computes the same constant and the
same value at every ROI voxel. LoG is the only type that is exact to rounding
rather than by construction (its float32 output is bit-identical on the
PyRadiomics cases); tests/radiomics/test_radiomics_crop.py checks every type against
PyRadiomics' full-image result at rel <= 1e-9.

PyRadiomics' ``execute`` is not called per region: its steps are, each once
where ``execute`` would repeat them. The mask is checked (``checkMask``'s
checks, from the ROI's bounding box already found: ``_check_mask``) and the
shape features are computed once, on the ROI's bounding box; each region
then goes through its filters (``get<Type>Image``), the crop to the ROI
(``cropToTumorMask``) and the feature classes (``computeFeatures``, with one
discretisation per image: :mod:`sklearn_medprep.radiomics._features`). LoG is
ITK's filter computed on the ROI's box only, each of its one-dimensional
passes on the lines the box needs (:mod:`sklearn_medprep.radiomics._log`). The
filters (SimpleITK and PyWavelets release the GIL) run in one other thread,
smallest region first, while this thread computes the features of the regions
already filtered (Python); ``FILTER_THREADS = 0`` runs them serially, with the
same values bit for bit. The Square family shares one region, each LoG sigma
has its own; features come back in PyRadiomics' order (shape, then image types
in the order of the settings). With ``resegmentRange`` (the mask then depends
on the image) every region goes through ``execute`` instead.
"""

import collections
import copy
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import SimpleITK as sitk

from ._features import compute_features
from ._log import log_images, region
from ._mesh import shape_class

__all__ = ["CropPlan", "crop_plan"]

#: LoG region half-width in sigmas (see the module docstring)
LOG_SUPPORT_SIGMAS = 20.0
#: 1: filters run in one thread beside the feature computation where the
#: process has 2 CPUs or more to itself (see ``_filter_thread``); 0: serially
FILTER_THREADS = 1

_SQUARE_FAMILY = ("Square", "SquareRoot", "Logarithm", "Exponential")
_SHAPE_CLASSES = ("shape", "shape2D")
_INTEGER_PIXELS = {
    sitk.sitkUInt8, sitk.sitkInt8, sitk.sitkUInt16, sitk.sitkInt16,
    sitk.sitkInt32, sitk.sitkUInt64, sitk.sitkInt64,
}
# wrap-around at the image border: a region meeting it keeps the whole axis
_WHOLE_AXES = ("Wavelet",)


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
        # at least 3: 4 voxels along every axis, as ITK's recursive Gaussian
        # needs, also where the region is clipped at the image border
        return tuple(
            max(int(math.ceil(LOG_SUPPORT_SIGMAS * sigma / float(s))), 3)
            for s in spacing
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
    >>> from sklearn_medprep.radiomics._crop import crop_plan
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

        PyRadiomics' own steps, each on its region: the mask checks
        (``checkMask``) and the shape features once, on the ROI's bounding
        box; then for every image type its filter (``get<Type>Image``) on its
        region, the crop to the ROI (``cropToTumorMask``) and the feature
        classes (``computeFeatures``). What ``execute`` would repeat per
        region (reading the mask, its label check over every voxel, the
        bounding box) is done once. With ``resegmentRange`` (the mask then
        depends on the image) every region goes through ``execute`` instead.

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
        label = int(label)
        bounds = bounding_box(sitk.GetArrayViewFromImage(mask), label)
        settings = {**extractor.settings, "label": label}
        if bounds is None or settings.get("resegmentRange") is not None:
            return self._execute_each(extractor, image, mask, label, bounds)
        # PyRadiomics' getMask: a UInt32 mask (cast per region: less to cast)
        tight = _region(mask.GetSize(), bounds, (0,) * mask.GetDimension())
        tight_image, tight_mask = region(image, tight), _mask_region(mask, tight)
        box = _check_mask(tight_image, tight_mask, label, settings)
        # every region is cut here, in this thread: filters in the other
        # thread then touch only their own images
        jobs = []
        for image_types, margin in _calls(
            extractor.enabledImagetypes, extractor.settings, image.GetSpacing()
        ):
            index = _full(image) if margin is None else _region(
                mask.GetSize(), bounds, margin, whole_axes=_wraps(image_types)
            )
            if index == tight and not any(n in _SQUARE_FAMILY for n in image_types):
                # margin 0 (Original): the region cut above, not cut again
                part_image, part_mask = tight_image, tight_mask
            else:
                index, part_image, part_mask = _part(image, mask, label, index,
                                                     image_types)
                part_mask = _uint32(part_mask)
            # the ROI's bounding box in the region's voxel indices
            offset = np.repeat([t.start - r.start for t, r in zip(tight, index)], 2)
            jobs.append((image_types, part_image, part_mask, box + offset,
                         image.GetSize()))
        out = _shape(extractor, tight_image, tight_mask, box, settings)
        parts = [None] * len(jobs)

        def features(position, filtered):
            parts[position] = [
                compute_features(extractor, image, roi, type_name, **kwargs)
                for image, roi, type_name, kwargs in filtered
            ]

        # filters (SimpleITK, PyWavelets: no GIL) in one other thread, smallest
        # region first, while this thread computes features (Python, GIL)
        threaded = _filter_thread()
        background = [
            position for position, job in enumerate(jobs)
            if threaded and list(job[0]) != ["Original"]
        ]
        background.sort(key=lambda position: _voxels(jobs[position][1]))
        pool = ThreadPoolExecutor(1) if background else None
        try:
            futures = [(position, pool.submit(_filter, settings, *jobs[position]))
                       for position in background]
            for position, job in enumerate(jobs):
                if position not in background:
                    features(position, _filter(settings, *job))
            for position, future in futures:
                features(position, future.result())
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        for part in parts:
            for values in part:
                out.update(values)
        return out

    def _execute_each(self, extractor, image, mask, label, bounds):
        """One ``extractor.execute`` per region (shape from the first)."""
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
                index = _region(mask.GetSize(), bounds, margin,
                                whole_axes=_wraps(image_types))
                _, part_image, part_mask = _part(image, mask, label, index,
                                                 image_types)
            result = sub.execute(part_image, part_mask, label=int(label))
            if out is None:
                out = result
            else:
                out.update(result)
        return out


def _filter(settings, image_types, image, mask, box, full_size):
    """``[(filtered image, ROI mask, image type name, settings), ...]``: each
    type's PyRadiomics filter on the region, cropped to the ROI's ``box``; LoG
    computed on the box only (:mod:`sklearn_medprep.radiomics._log`), with
    PyRadiomics' checks on the whole image's ``full_size``.
    """
    from radiomics import imageoperations

    filtered = []
    roi = None
    for name, custom in image_types.items():
        args = {**settings, **(custom or {})}  # as PyRadiomics' execute
        if name == "LoG":
            if roi is None:
                roi = imageoperations.cropToTumorMask(mask, mask, box)[1]
            index = tuple(slice(int(lo), int(hi) + 1)
                          for lo, hi in zip(box[0::2], box[1::2]))
            for output, type_name, kwargs in log_images(image, index, full_size,
                                                        **args):
                filtered.append((output, roi, type_name, kwargs))
            continue
        generator = getattr(imageoperations, f"get{name}Image")
        for output, type_name, kwargs in generator(image, mask, **args):
            if _covers(box, output.GetSize()):  # the region is the box (Original)
                roi = mask  # cropToTumorMask would copy both unchanged
            else:
                output, roi = imageoperations.cropToTumorMask(output, mask, box)
            filtered.append((output, roi, type_name, kwargs))
    return filtered


def _check_mask(image, mask, label, settings):
    """PyRadiomics' ``checkMask`` on the ROI's bounding box: its box (lo, hi
    pairs), computed without ITK's label statistics.

    The region is the box of ``mask == label`` (cut from an image and a mask
    already checked for the label and geometry), so the box spans it all;
    what is left to check is the ROI's number of dimensions
    (``minimumROIDimensions``) and voxels (``minimumROISize``). Where a check
    fails, ``checkMask`` itself runs and raises PyRadiomics' own error.
    ``LabelStatisticsImageFilter`` costs about 1.4 ms on brain1's box (2% of
    its extraction); this, about 0.01 ms.
    """
    size = mask.GetSize()
    box = np.array([bound for n in size for bound in (0, n - 1)])
    dims = sum(n > 1 for n in size)
    fails = dims == 0 or dims < settings.get("minimumROIDimensions", 2)
    min_size = settings.get("minimumROISize")
    if not fails and min_size is not None:
        roi = np.count_nonzero(sitk.GetArrayViewFromImage(mask) == label)
        fails = roi <= min_size
    if fails:
        from radiomics import imageoperations

        return imageoperations.checkMask(image, mask, **settings)[0]
    return box


def _shape(extractor, image, mask, box, settings):
    """``extractor.computeShape(image, mask, box, **settings)`` on the ROI's box.

    ``computeShape`` first crops image and mask to ``box`` (two ITK crop
    filters); where ``box`` spans the whole region (the ROI's bounding box,
    always here) that crop copies them unchanged, and the shape classes get
    image and mask themselves: PyRadiomics' own steps otherwise (its shape
    classes, settings and messages), the 3D class's mesh coefficients from
    :func:`~sklearn_medprep.radiomics._mesh.mesh_coefficients` (the same
    values, without PyRadiomics' loop over every pair of mesh vertices).
    """
    if not _covers(box, mask.GetSize()):
        return extractor.computeShape(image, mask, box, **settings)
    from radiomics import getFeatureClasses
    from radiomics.featureextractor import logger

    out = collections.OrderedDict()
    enabled = extractor.enabledFeatures

    def compute(shape_type):
        logger.info("Computing %s", shape_type)
        names = enabled[shape_type]
        cls = getFeatureClasses()[shape_type]
        if shape_type == "shape":  # mesh diameters without the all-pairs loop
            cls = shape_class(cls)
        shape = cls(image, mask, **settings)
        if names is not None:
            for name in names:
                shape.enableFeatureByName(name)
        for name, value in shape.execute().items():
            out[f"original_{shape_type}_{name}"] = value

    ndim = mask.GetDimension()
    if "shape" in enabled:
        if ndim == 3:
            compute("shape")
        else:
            logger.warning("Shape features are only available 3D input (for 2D "
                           "input, use shape2D). Found %iD input", ndim)
    if "shape2D" in enabled:
        if ndim == 3:
            dimension = settings.get("force2Ddimension", 0)
            if not settings.get("force2D", False):
                logger.warning("parameter force2D must be set to True to enable "
                               "shape2D extraction")
            elif not (box[1::2] - box[0::2] + 1)[dimension] > 1:
                logger.warning("Size in specified 2D dimension (%i) is greater "
                               "than 1, cannot calculate 2D shape", dimension)
            else:
                compute("shape2D")
        elif ndim == 2:
            compute("shape2D")
        else:
            logger.warning("Shape2D features are only available for 2D and 3D "
                           "(with force2D=True) input. Found %iD input", ndim)
    return out


def _covers(box, size):
    """Whether PyRadiomics' bounding ``box`` (lo, hi pairs) spans all of ``size``."""
    return all(int(lo) == 0 and int(hi) == n - 1
               for lo, hi, n in zip(box[0::2], box[1::2], size))


def _filter_thread():
    """Whether filters run in a thread of their own: ``FILTER_THREADS`` and at
    least 2 CPUs for this process. In joblib's worker processes
    (``RadiomicsExtractor(n_jobs=...)``) ``OMP_NUM_THREADS`` says how many
    (joblib sets it to the CPUs per worker); with 1, the thread would only
    compete with the other workers.
    """
    if not FILTER_THREADS:
        return False
    try:
        cpus = int(os.environ.get("OMP_NUM_THREADS") or 0)
    except ValueError:
        cpus = 0
    if cpus <= 0:
        cpus = os.cpu_count() or 1
    return cpus >= 2


def _voxels(image):
    return math.prod(image.GetSize())


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


def bounding_box(mask_array, label):
    """``[(lo, hi), ...]`` in array (z, y, x) order of ``mask == label``, or None."""
    roi = mask_array == label
    bounds = []
    for axis in range(roi.ndim):
        other = tuple(a for a in range(roi.ndim) if a != axis)
        hit = np.flatnonzero(roi.any(axis=other))
        if hit.size == 0:
            return None
        bounds.append((int(hit[0]), int(hit[-1])))
        # later axes only need the slab already found
        index = [slice(None)] * roi.ndim
        index[axis] = slice(hit[0], hit[-1] + 1)
        roi = roi[tuple(index)]
    return bounds


def _wraps(image_types):
    """Whether a region of these types keeps whole axes where it meets the
    image border (wrap-around of the wavelet).
    """
    return any(name in _WHOLE_AXES for name in image_types)


def _region(size, bounds, margin, *, whole_axes=False):
    """Slices in SimpleITK (x, y, z) order, clipped at the image border; with
    ``whole_axes``, a whole axis where the region would reach the border.
    """
    index = []
    for dim, (lo, hi) in enumerate(reversed(bounds)):
        start, stop = lo - margin[dim], hi + margin[dim] + 1
        if whole_axes and margin[dim] > 0 and (start <= 0 or stop >= size[dim]):
            start, stop = 0, size[dim]
        index.append(slice(max(start, 0), min(stop, size[dim])))
    return tuple(index)


def _full(image):
    return tuple(slice(0, n) for n in image.GetSize())


def _cut(image, index):
    """``image[index]``, or ``image`` itself where ``index`` covers it."""
    return region(image, index)


def _uint32(mask):
    """The mask as PyRadiomics' ``getMask`` gives it to the filters and features."""
    if mask.GetPixelID() == sitk.sitkUInt32:
        return mask
    if mask.GetPixelID() not in _INTEGER_PIXELS:
        cast = sitk.CastImageFilter()
        cast.SetNumberOfThreads(1)  # see _radiomics_log.region
        cast.SetOutputPixelType(sitk.sitkUInt32)
        return cast.Execute(mask)
    # integer voxels: numpy's cast (modulo 2**32, as C's) and a copy of the
    # geometry give ITK's CastImageFilter's image at a quarter of its cost
    cast = sitk.GetImageFromArray(
        sitk.GetArrayViewFromImage(mask).astype(np.uint32), isVector=False
    )
    cast.CopyInformation(mask)
    return cast


def _mask_region(mask, index):
    """``_uint32(region(mask, index))`` in one numpy step for an integer mask.

    The cut and the cast of the voxels together, and the geometry of the cut
    (spacing, direction and the origin at the region's first voxel,
    ``TransformIndexToPhysicalPoint``, as ITK's slice filter sets it): the
    same image as the two ITK filters at a fraction of their cost.
    """
    if mask.GetPixelID() not in _INTEGER_PIXELS:  # (vector masks included)
        return _uint32(region(mask, index))
    array = sitk.GetArrayViewFromImage(mask)[tuple(reversed(index))]
    out = sitk.GetImageFromArray(array.astype(np.uint32), isVector=False)
    out.SetSpacing(mask.GetSpacing())
    out.SetDirection(mask.GetDirection())
    out.SetOrigin(mask.TransformIndexToPhysicalPoint([int(s.start) for s in index]))
    return out


def _part(image, mask, label, index, image_types):
    """``(index, image, mask)`` of a region; for the Square family with the
    whole image's ``max |x|`` carried in (the whole image where there is no
    room for it).
    """
    part_image, part_mask = _cut(image, index), _cut(mask, index)
    if any(name in _SQUARE_FAMILY for name in image_types):
        part_image = _carry_maximum(image, part_image, part_mask, label)
        if part_image is None:
            return _full(image), image, mask
    return index, part_image, part_mask


def _carry_maximum(image, part_image, part_mask, label):
    """Put the whole image's ``max |x|`` into the region, outside the ROI.

    Returns None where the ROI fills the region (no room for it).
    """
    if part_image.GetSize() == image.GetSize():
        return part_image

    def extreme(array):  # the value of largest magnitude (no integer overflow)
        high, low = array.max(), array.min()
        return high if abs(float(high)) >= abs(float(low)) else low

    value = extreme(sitk.GetArrayViewFromImage(image))
    array = sitk.GetArrayFromImage(part_image)
    if abs(float(extreme(array))) == abs(float(value)):
        return part_image  # the region holds it already
    free = np.argwhere(sitk.GetArrayViewFromImage(part_mask) != label)
    if free.size == 0:
        return None
    array[tuple(free[0])] = value
    carried = sitk.GetImageFromArray(array, isVector=False)
    carried.CopyInformation(part_image)
    return carried
