"""Lesions: the connected components of one label of a mask, numbered as scipy does.

One rule numbers the lesions everywhere: the voxels of ``label`` in the mask
(cast to unsigned integers as :func:`~sklearn_medprep.radiomics._backend.check_label`
casts it for extraction) are labelled by :func:`scipy.ndimage.label` with the
structuring element ``scipy.ndimage.generate_binary_structure(ndim,
connectivity)``; lesion ``k`` is scipy's component ``k`` (scipy numbers them in
the order of their first voxel in C order, the mask array being ``(z, y, x)``
as SimpleITK gives it). :func:`~sklearn_medprep.expand_lesions` lists the
lesions with it, and the extractor restricts a row's mask to its lesion with
it, before the backend sees the mask (the backend seam stays generic: a lesion
row is an ordinary row whose mask holds one component).

``connectivity`` is scipy's (and scikit-image's) rank: 1 joins voxels sharing a
face (6 neighbours in 3-D, 4 in 2-D), 2 also an edge (18; 8 in 2-D), 3 also a
corner (26, the full neighbourhood most lesion tools use); in 2-D, 3 is the
full 8-neighbourhood.
"""

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..exceptions import SubjectTableError
from ._backend import _INTEGER_PIXELS, check_label

__all__ = ["CONNECTIVITIES", "label_components", "restrict_to_lesion"]

#: Accepted values of ``connectivity``.
CONNECTIVITIES = (1, 2, 3)


def check_connectivity(connectivity):
    """Return ``connectivity`` as an int in 1..3, or raise ValueError."""
    if (isinstance(connectivity, (bool, np.bool_))
            or not isinstance(connectivity, (int, np.integer))
            or int(connectivity) not in CONNECTIVITIES):
        raise ValueError(
            f"connectivity must be 1 (faces: 6 neighbours in 3-D), 2 (faces and "
            f"edges: 18) or 3 (faces, edges and corners: 26), got {connectivity!r}"
        )
    return int(connectivity)


def _label_array(mask):
    """The mask's voxels as an integer array, cast as for extraction."""
    if mask.GetNumberOfComponentsPerPixel() != 1:
        raise SubjectTableError(
            f"lesions need a scalar label mask; this mask has "
            f"{mask.GetNumberOfComponentsPerPixel()} channels per voxel"
        )
    if mask.GetPixelID() not in _INTEGER_PIXELS:
        mask = sitk.Cast(mask, sitk.sitkUInt32)  # as check_label casts it
    return sitk.GetArrayFromImage(mask)


def label_components(mask, label, connectivity=3):
    """Number the connected components of ``label`` in ``mask``.

    Parameters
    ----------
    mask : SimpleITK.Image
        Scalar label mask.
    label : int
        The label whose components are numbered.
    connectivity : {1, 2, 3}, default=3
        See the module docstring (3: 26-connectivity in 3-D).

    Returns
    -------
    components : ndarray of int32
        ``(z, y, x)`` array: 0 outside ``label``, ``k`` on lesion ``k``.
    sizes : ndarray of int64
        Voxel count of lesions ``1..n`` (``sizes[k - 1]`` for lesion ``k``).

    Raises
    ------
    SubjectTableError
        A mask with several channels per voxel (message only: callers add row,
        column and file).
    """
    connectivity = check_connectivity(connectivity)
    array = _label_array(mask)
    structure = ndimage.generate_binary_structure(
        array.ndim, min(connectivity, array.ndim)
    )
    components, n = ndimage.label(array == int(label), structure=structure)
    sizes = np.bincount(components.ravel(), minlength=n + 1)[1:].astype(np.int64)
    return components, sizes


def restrict_to_lesion(mask, label, lesion, connectivity=3, voxels=None):
    """Return ``mask`` holding only lesion ``lesion`` of ``label`` (value ``label``).

    Every other voxel (other components, other labels) becomes 0; geometry
    and pixel type (after the cast of :func:`check_label`) are kept.

    Parameters
    ----------
    mask : SimpleITK.Image
    label : int
    lesion : int
        Lesion number, 1..n as :func:`label_components` numbers them.
    connectivity : {1, 2, 3}, default=3
    voxels : int or None, default=None
        The lesion's voxel count as the table gives it (None: not checked).

    Returns
    -------
    SimpleITK.Image

    Raises
    ------
    SubjectTableError
        No voxel of ``label``, no lesion ``lesion`` (the message gives how many
        there are at this connectivity), a lesion of another voxel count than
        ``voxels`` (a table numbered at another connectivity), or a
        multi-channel mask.
    """
    components, sizes = label_components(mask, label, connectivity)
    mask = check_label(mask, label)  # the extractor's own error when absent
    if lesion == 0:
        raise SubjectTableError(
            f"lesion 0 marks a mask without a lesion of label {label} "
            "(a row kept by expand_lesions(empty='keep')): no ROI to extract"
        )
    if not 1 <= lesion <= len(sizes):
        raise SubjectTableError(
            f"lesion {lesion} of label {label} does not exist: the mask holds "
            f"{len(sizes)} lesion(s) of it at connectivity={connectivity}; "
            "build the table with expand_lesions and the extractor's connectivity"
        )
    if voxels is not None and sizes[lesion - 1] != voxels:
        raise SubjectTableError(
            f"lesion {lesion} of label {label} has {sizes[lesion - 1]} voxels at "
            f"connectivity={connectivity}, the table says {voxels}: was the "
            "table built by expand_lesions at another connectivity, or from "
            "another mask?"
        )
    array = sitk.GetArrayViewFromImage(mask)
    kept = np.where(components == lesion, array, 0).astype(array.dtype)
    out = sitk.GetImageFromArray(kept)
    out.CopyInformation(mask)
    return out
