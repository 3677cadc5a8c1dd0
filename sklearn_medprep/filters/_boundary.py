"""Boundary conditions, axis conventions and configuration checks shared by the filters.

Axes
----
Every filter takes a 3D array ordered **(z, y, x)**, as SimpleITK's
``GetArrayFromImage`` returns it, and a spacing in the same order (mm). IBSI-2
names axes x, y, z as nibabel reads them (i, j, k), so IBSI's x is the **last**
numpy axis here and z the first: Laws' ``"E5L5S5"`` is E5 along axis 2, L5 along
axis 1 and S5 along axis 0. "By slice" (2D) filters work on each xy plane, i.e.
on axes (1, 2) of every index along axis 0.

Boundary conditions
-------------------
The names are scipy.ndimage's, as IBSI-2's reference configurations use them:

============  ===========================  ============================
name          IBSI-2                       padding of ``a b c d``
============  ===========================  ============================
``constant``  zero padding                 ``0 0 0 | a b c d | 0 0 0``
``nearest``   nearest value                ``a a a | a b c d | d d d``
``wrap``      periodic                     ``b c d | a b c d | a b c``
``reflect``   mirror (edge voxel repeated) ``c b a | a b c d | d c b``
============  ===========================  ============================

scipy's own ``mirror`` mode (edge voxel not repeated) is not IBSI's mirror and
is refused.
"""

import numbers

import numpy as np

__all__ = [
    "BOUNDARY_MODES",
    "check_boundary",
    "check_image",
    "filter_axes",
    "get_param",
    "pad",
]

#: IBSI-2 boundary conditions, by their scipy.ndimage names.
BOUNDARY_MODES = ("constant", "nearest", "wrap", "reflect")

# scipy.ndimage mode -> numpy.pad mode giving the same padding
_NUMPY_PAD = {
    "constant": "constant",
    "nearest": "edge",
    "wrap": "wrap",
    "reflect": "symmetric",
}

_REQUIRED = object()


def check_boundary(mode):
    """Return ``mode`` if it is one of :data:`BOUNDARY_MODES`, else raise.

    Parameters
    ----------
    mode : str
        A boundary condition name.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        Naming the ``boundary`` key and the accepted values.
    """
    if mode not in BOUNDARY_MODES:
        hint = (" (scipy's 'mirror' does not repeat the edge voxel; IBSI's mirror "
                "padding is 'reflect')" if mode == "mirror" else "")
        raise ValueError(
            f"filter config key 'boundary': {mode!r} is not one of "
            f"{list(BOUNDARY_MODES)}{hint}")
    return mode


def check_image(image, spacing):
    """Validate a (z, y, x) image and its spacing; return float64 copies.

    Parameters
    ----------
    image : array-like of shape (z, y, x)
    spacing : sequence of 3 positive floats
        Voxel spacing in mm, in the order (z, y, x).

    Returns
    -------
    image : ndarray of float64
    spacing : ndarray of float64, shape (3,)
    """
    array = np.asarray(image)
    if array.ndim != 3:
        raise ValueError(
            f"image: expected a 3D array ordered (z, y, x), got {array.ndim} "
            f"dimensions (shape {array.shape}); give a 2D image as shape (1, y, x)")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"image: expected numbers, got dtype {array.dtype}")
    if np.iscomplexobj(array):
        raise ValueError("image: expected real values, got a complex array")
    array = array.astype(np.float64, copy=False)
    if not np.all(np.isfinite(array)):
        raise ValueError("image: contains NaN or infinite values")
    spacing = np.asarray(spacing, dtype=np.float64)
    bad = spacing.shape != (3,) or not np.all(np.isfinite(spacing))
    if bad or np.any(spacing <= 0):
        raise ValueError(
            f"spacing: expected 3 positive voxel sizes in mm ordered (z, y, x), "
            f"got {spacing.tolist()}")
    return array, spacing


def filter_axes(by_slice):
    """The numpy axes a filter runs along: (1, 2) by slice, else (0, 1, 2)."""
    return (1, 2) if by_slice else (0, 1, 2)


def pad(image, widths, mode):
    """Pad ``image`` by ``widths`` voxels per axis with IBSI boundary ``mode``.

    Parameters
    ----------
    image : ndarray
    widths : sequence of int or of (int, int)
        Voxels added per axis (both sides), as ``numpy.pad``'s ``pad_width``.
    mode : str
        One of :data:`BOUNDARY_MODES`.

    Returns
    -------
    ndarray
    """
    return np.pad(image, widths, mode=_NUMPY_PAD[check_boundary(mode)])


def get_param(config, key, kind, default=_REQUIRED, choices=None):
    """Read and check one key of a filter configuration.

    Parameters
    ----------
    config : dict
        The filter configuration.
    key : str
        The key to read.
    kind : {"positive", "nonnegative_int", "positive_int", "number", "bool", "str"}
        What the value must be.
    default : object, optional
        Returned when ``key`` is absent or None; without it the key is required.
    choices : sequence, optional
        Accepted values (for ``kind="str"``).

    Returns
    -------
    object

    Raises
    ------
    ValueError
        Naming ``key`` when it is missing or its value is not valid.
    """
    value = config.get(key)
    if value is None:
        if default is _REQUIRED:
            raise ValueError(
                f"filter config of family {config.get('family')!r} needs the key "
                f"{key!r}")
        return default
    ok = True
    if kind == "bool":
        ok = isinstance(value, (bool, np.bool_))
    elif kind == "str":
        ok = isinstance(value, str) and (choices is None or value in choices)
    elif kind in ("positive_int", "nonnegative_int"):
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        ok = ok and (value > 0 if kind == "positive_int" else value >= 0)
    elif kind in ("positive", "number"):
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        ok = ok and np.isfinite(value) and (value > 0 if kind == "positive" else True)
    else:  # pragma: no cover - programming error
        raise ValueError(f"unknown kind {kind!r}")
    if not ok:
        wanted = {
            "positive": "a positive number",
            "number": "a finite number",
            "positive_int": "a positive integer",
            "nonnegative_int": "a non-negative integer",
            "bool": "True or False",
            "str": f"one of {list(choices)}" if choices else "a string",
        }[kind]
        raise ValueError(
            f"filter config key {key!r}: expected {wanted}, got {value!r}")
    return value
