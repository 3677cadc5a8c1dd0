"""Features of IBSI-2 response maps, each filter run on the region it needs.

For the ``"IBSI2"`` image type (:mod:`sklearn_medprep.radiomics._ibsi2_settings`)
the PyRadiomics backend runs PyRadiomics' own preprocessing on the whole image,
as its ``execute`` does (``loadImage``: normalisation, resampling, mask
correction; ``checkMask``; ``resegmentMask`` with ``resegmentRange``), then for
each filter

1. cuts the region of the ROI's bounding box plus the filter's margin
   (:func:`~sklearn_medprep.radiomics._ibsi2_settings.filter_margin`: the
   kernel's radius, plus the energy window for Laws energy maps, at every
   dilation of an a-trous wavelet), clipped at the image border, where the
   filter's boundary condition is then the full image's own; with a periodic
   (``wrap``) boundary a region meeting the border keeps the whole axis, and a
   filter without a margin (Fourier-domain filters) the whole image;
2. filters the region with :func:`sklearn_medprep.filters.filter_image`
   (float64, spacing in (z, y, x) order);
3. crops the response map to the ROI (PyRadiomics' ``cropToTumorMask``) and
   computes the enabled feature classes on it
   (:func:`sklearn_medprep.radiomics._features.compute_features`), named
   ``ibsi2-<name>_<class>_<feature>``.

Inside the ROI's box the values are those of the filter on the whole image:
exactly for the finite kernels (mean, LoG, Laws, wavelets), to rounding for
Gabor, whose Gaussian envelope is cut at 10 sigma (below ``exp(-50)`` of its
peak); tests/radiomics/test_radiomics_ibsi2.py compares each family with the
whole image's response.
"""

import numpy as np
import SimpleITK as sitk

from ..filters import filter_image
from ._crop import _region
from ._features import compute_features
from ._ibsi2_settings import PREFIX, filter_config, filter_margin
from ._log import region

__all__ = ["ibsi2_features", "ibsi2_regions"]


def _preprocess(extractor, image, mask, label):
    """PyRadiomics' steps before its filters: ``(image, mask, box, settings)``."""
    from radiomics import imageoperations

    settings = {**extractor.settings, "label": int(label)}
    image, mask = extractor.loadImage(image, mask, None, **settings)
    box, corrected = imageoperations.checkMask(image, mask, **settings)
    if corrected is not None:
        mask = corrected
    if box is None:
        raise ValueError("the mask holds no ROI voxel PyRadiomics accepts "
                         f"(label {label})")
    if settings.get("resegmentRange") is not None:
        mask = imageoperations.resegmentMask(image, mask, **settings)
        box, _ = imageoperations.checkMask(image, mask, **settings)
        if box is None:
            raise ValueError("the resegmented mask holds no ROI voxel "
                             f"(resegmentRange {settings['resegmentRange']})")
    return image, mask, box, settings


def ibsi2_regions(entry, image_size, spacing, box):
    """Slices (SimpleITK x, y, z order) of the region a filter needs.

    Parameters
    ----------
    entry : dict
        A validated IBSI-2 entry.
    image_size, spacing : sequence
        Of the whole (preprocessed) image, (x, y, z) order.
    box : sequence of int
        PyRadiomics' bounding box ``(x_lo, x_hi, y_lo, y_hi, z_lo, z_hi)``.

    Returns
    -------
    tuple of slice
    """
    margin = filter_margin(entry, spacing)
    if margin is None:
        return tuple(slice(0, int(n)) for n in image_size)
    # _region takes the bounds in array (z, y, x) order
    bounds = [(int(box[2 * d]), int(box[2 * d + 1]))
              for d in reversed(range(len(image_size)))]
    return _region(image_size, bounds, margin,
                   whole_axes=entry.get("boundary") == "wrap")


def response_region(image, entry, index):
    """The filter's response on ``image[index]`` as a SimpleITK image."""
    part = region(image, index)
    array = sitk.GetArrayFromImage(part).astype(np.float64, copy=False)
    spacing = tuple(float(s) for s in reversed(part.GetSpacing()))
    response = filter_image(array, spacing, filter_config(entry))
    out = sitk.GetImageFromArray(np.asarray(response, dtype=np.float64))
    out.CopyInformation(part)
    return out


def ibsi2_features(extractor, image, mask, label, filters):
    """Features of every IBSI-2 filter's response map inside the ROI.

    Parameters
    ----------
    extractor : radiomics.featureextractor.RadiomicsFeatureExtractor
        Its settings and enabled feature classes (shape classes are skipped:
        PyRadiomics computes them once, on the original image).
    image, mask : SimpleITK.Image
        Checked image and mask (same geometry, label present).
    label : int
        ROI label.
    filters : list of dict
        Validated IBSI-2 entries.

    Returns
    -------
    dict
        ``{"ibsi2-<name>_<class>_<feature>": value}`` in the order of the
        filters and classes.
    """
    from radiomics import imageoperations

    image, mask, box, settings = _preprocess(extractor, image, mask, label)
    out = {}
    for entry in filters:
        index = ibsi2_regions(entry, image.GetSize(), image.GetSpacing(), box)
        response = response_region(image, entry, index)
        part_mask = region(mask, index)
        part_box = np.asarray(box) - np.repeat([s.start for s in index], 2)
        cropped, roi = imageoperations.cropToTumorMask(response, part_mask,
                                                       part_box)
        out.update(compute_features(extractor, cropped, roi,
                                    PREFIX + entry["name"], **settings))
    return out
