"""The IBSI-1 feature families computed by the library, and their one registry.

``RadiomicsExtractor(settings="ibsi")`` returns PyRadiomics' features (with
IBSI's definitions where they differ, :mod:`sklearn_medprep.radiomics._ibsi`)
followed by the IBSI-1 features PyRadiomics lacks, computed here on the same
image and ROI PyRadiomics was given, named ``original_ibsi_<IBSI id>``
(``original_ibsi_morph_comp_1``, ``original_ibsi_ivh_v10``, ...: IBSI's own
feature identifiers, 3D configuration, so the phantom table maps each column to
IBSI by dropping the prefix).

:data:`FAMILIES` lists the family functions. Each takes ``(array, mask,
spacing)`` (numpy, axes z, y, x; ``mask`` bool; spacing in mm) and returns
``{ibsi_id: float}``; ``array`` is the image's intensities or its grey levels
discretised as PyRadiomics does (bin width of the preset, bins from the ROI
minimum, levels ``1..Ng``), as the second item of each entry says; the third
lists the IBSI ids it returns (the columns, in order). A new family is one line
here; :data:`~sklearn_medprep.radiomics._ibsi.IBSI_FEATURE_MAP` and the phantom
table follow.
"""

import math

import numpy as np
import SimpleITK as sitk

from ._crop import bounding_box
from ._ibsi_intensity import (
    HISTOGRAM_FEATURES,
    INTENSITY_FEATURES,
    LOCAL_RADIUS_MM,
    histogram_features,
    intensity_features,
)
from ._ibsi_morphology import MORPHOLOGY_FEATURES, morphology_features
from ._ibsi_texture import TEXTURE_FEATURES, texture_features

__all__ = [
    "FAMILIES",
    "FAMILY_FEATURES",
    "PREFIX",
    "definitions_tag",
    "discretise",
    "family_values",
]

#: (family function, its input: "intensities" or "grey", the IBSI ids it
#: returns), in output order.
FAMILIES = [
    (morphology_features, "intensities", MORPHOLOGY_FEATURES),
    (intensity_features, "intensities", INTENSITY_FEATURES),
    (histogram_features, "grey", HISTOGRAM_FEATURES),
    (texture_features, "grey", TEXTURE_FEATURES),
]

#: Prefix of the column names of the families' features.
PREFIX = "original_ibsi_"

#: Column name -> IBSI id of every family feature, in output order.
FAMILY_FEATURES = {PREFIX + ibsi: ibsi for _, _, ids in FAMILIES for ibsi in ids}


def definitions_tag():
    """The ``definitions`` entry of the preset's cache key: names the families, so a
    cache written before a family was added is not reused for a table that has it.

    Examples
    --------
    >>> from sklearn_medprep.radiomics._ibsi_families import definitions_tag
    >>> definitions_tag().startswith("ibsi:morphology_features,")
    True
    """
    return "ibsi:" + ",".join(function.__name__ for function, _, _ in FAMILIES)


def discretise(intensities, mask, bin_width):
    """Grey levels of PyRadiomics' fixed bin width, bins from the ROI minimum.

    ``floor(x / w) - floor(min_ROI / w) + 1``: level 1 holds the ROI minimum
    (PyRadiomics' ``binImage`` with ``binWidth``); voxels outside the ROI get
    levels too (below 1 for lower intensities).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_medprep.radiomics._ibsi_families import discretise
    >>> values = np.array([[[-3.0, 2.5, 7.0]]])
    >>> discretise(values, values > 0, 2.0)
    array([[[-2.,  1.,  3.]]])
    """
    values = np.asarray(intensities, float)
    low = math.floor(float(values[np.asarray(mask, bool)].min()) / bin_width)
    return np.floor(values / bin_width) - low + 1.0


def family_values(image, mask, label, bin_width, *, keep_intensities=False):
    """The families' features on one ROI, as ``[(column, value), ...]``.

    Parameters
    ----------
    image, mask : SimpleITK.Image
        The image and the mask PyRadiomics was given (same geometry, one
        channel), before any crop: the local intensity peak looks at voxels up
        to :data:`LOCAL_RADIUS_MM` outside the ROI.
    label : int
        The ROI's label in ``mask``.
    bin_width : float
        The preset's bin width (grey levels of the "grey" families).
    keep_intensities : bool, default=False
        IBSI "no discretisation" (``noDiscretization``): the grey levels are
        the intensities themselves, as for PyRadiomics' texture classes then
        (:mod:`sklearn_medprep.radiomics._discretisation`), not bins numbered
        from the ROI minimum.

    Returns
    -------
    list of (str, float)
    """
    if mask.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(
            "settings='ibsi' needs a one-channel label mask (the IBSI-1 families "
            "are computed on it); this mask has "
            f"{mask.GetNumberOfComponentsPerPixel()} channels"
        )
    labels = sitk.GetArrayViewFromImage(mask)
    bounds = bounding_box(labels, label)
    if bounds is None:
        raise ValueError(f"label {label} is absent from the mask")
    spacing = tuple(float(s) for s in reversed(image.GetSpacing()))
    margins = [int(LOCAL_RADIUS_MM // s) for s in spacing]
    box = tuple(
        slice(max(lo - m, 0), hi + m + 1) for (lo, hi), m in zip(bounds, margins)
    )
    intensities = sitk.GetArrayViewFromImage(image)[box].astype(float)
    roi = labels[box] == label
    inputs = {"intensities": intensities,
              "grey": intensities if keep_intensities
              else discretise(intensities, roi, float(bin_width))}
    out = []
    for function, kind, ids in FAMILIES:
        features = function(inputs[kind], roi, spacing)
        out.extend((PREFIX + name, float(features[name])) for name in ids)
    return out
