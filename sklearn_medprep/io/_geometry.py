"""The one rule for "same geometry": what SimpleITK (and so PyRadiomics) accepts.

Two images occupy the same physical space when they have the same size and
their spacing, origin and direction agree within ITK's tolerances, the check of
``itk::ImageToImageFilter::VerifyInputInformation`` that SimpleITK filters run
on their inputs (PyRadiomics checks a mask against its image with
``LabelStatisticsImageFilter``):

* spacing and origin: ``|a - b| <= coordinate_tolerance * |spacing of the
  first image along its first axis|``, component by component (the tolerance
  is relative to the voxel size: 1e-6 of a voxel by default);
* direction: ``|a - b| <= direction_tolerance``, cosine by cosine (absolute).

The tolerances default to SimpleITK's global defaults
(``sitk.ProcessObject.GetGlobalDefaultCoordinateTolerance()`` and
``GetGlobalDefaultDirectionTolerance()``, both 1e-6). One ``tolerance`` sets
both, as PyRadiomics' ``geometryTolerance`` setting does.

Used by :func:`sklearn_medprep.validate_table` (image and mask of a row), the
radiomics worker (mask against image, before extraction) and voxel-wise ComBat
(every image on the template grid): a table that passes ``validate_table``
passes PyRadiomics' geometry check, and one that fails it fails there too.
"""

import numpy as np
import SimpleITK as sitk

__all__ = ["geometry_of", "geometry_problem", "geometry_tolerances"]


def geometry_of(image):
    """``(size, spacing, origin, direction)`` of a SimpleITK image.

    Parameters
    ----------
    image : SimpleITK.Image
        The image.

    Returns
    -------
    tuple
    """
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


def geometry_tolerances(tolerance=None):
    """``(coordinate, direction)`` tolerances of the rule.

    Parameters
    ----------
    tolerance : float or None, default=None
        Both tolerances (PyRadiomics' ``geometryTolerance``); None takes
        SimpleITK's global defaults.

    Returns
    -------
    tuple of float
    """
    if tolerance is not None:
        return float(tolerance), float(tolerance)
    return (
        sitk.ProcessObject.GetGlobalDefaultCoordinateTolerance(),
        sitk.ProcessObject.GetGlobalDefaultDirectionTolerance(),
    )


def _shown(a, b):
    """The two vectors, to 6 decimals unless that hides their difference."""
    a6, b6 = np.round(a, 6).tolist(), np.round(b, 6).tolist()
    if a6 != b6:
        return f"{a6} vs {b6}"
    return f"{[float(v) for v in a]} vs {[float(v) for v in b]}"


def geometry_problem(a, b, *, tolerance=None):
    """Describe how geometry ``b`` differs from the reference ``a``, or None.

    Parameters
    ----------
    a, b : tuple
        ``(size, spacing, origin, direction)`` of the reference (the image)
        and of the other (the mask), e.g. from :func:`geometry_of` or
        :func:`sklearn_medprep.io._read.read_geometry`.
    tolerance : float or None, default=None
        See :func:`geometry_tolerances`. The coordinate tolerance is relative
        to the first spacing of ``a``.

    Returns
    -------
    str or None
        ``"size (...) vs (...)"``, ``"spacing [...] vs [...]"``, ... for the
        first difference (dimension, size, spacing, origin, direction), None
        when SimpleITK would take both as the same physical space.

    Examples
    --------
    >>> a = ((4, 4), (0.1, 0.1), (0.0, 0.0), (1.0, 0.0, 0.0, 1.0))
    >>> b = ((4, 4), (0.1, 0.1), (0.0, 5e-8), (1.0, 0.0, 0.0, 1.0))
    >>> geometry_problem(a, b) is None  # 5e-8 <= 1e-6 * 0.1
    True
    >>> geometry_problem(a, b, tolerance=1e-7)
    'origin [0.0, 0.0] vs [0.0, 5e-08]'
    """
    size_a, spacing_a, origin_a, dir_a = a
    size_b, spacing_b, origin_b, dir_b = b
    if len(size_a) != len(size_b):
        return f"dimension {len(size_a)} vs {len(size_b)}"
    if tuple(size_a) != tuple(size_b):
        return f"size {tuple(size_a)} vs {tuple(size_b)}"
    coordinate, direction = geometry_tolerances(tolerance)
    coordinate_tol = coordinate * abs(spacing_a[0])
    for name, x, y, tol in (
        ("spacing", spacing_a, spacing_b, coordinate_tol),
        ("origin", origin_a, origin_b, coordinate_tol),
        ("direction", dir_a, dir_b, direction),
    ):
        if not np.allclose(x, y, rtol=0, atol=tol):
            return f"{name} {_shown(x, y)}"
    return None
