"""IBSI-2 filters as an image type of the PyRadiomics backend's settings.

PyRadiomics' settings name their filters under ``imageType``; the IBSI-2
convolutional filters (:func:`sklearn_medprep.filters.filter_image`) join them
under the key ``"IBSI2"``, a list of filter configurations::

    {"imageType": {"Original": {},
                   "IBSI2": [{"name": "laws-L5E5E5", "family": "laws",
                              "kernel": "L5E5E5", "energy_map": True,
                              "energy_distance_voxels": 7, "boundary": "reflect",
                              "rotation_invariance": True, "pooling": "max"}]}}

Each entry is the configuration :func:`~sklearn_medprep.filters.filter_image`
takes (``family`` and its parameters, ``boundary``, ``by_slice``,
``rotation_invariance``, ``pooling``) plus an optional ``name``; the features
of its response map are called ``ibsi2-<name>_<class>_<feature>``. Without a
name, one is made from the family and its main parameters
(:func:`default_name`).

This module splits the key from what PyRadiomics validates
(:func:`split_ibsi2`), checks every entry (:func:`validate_ibsi2`: the
structure here, the parameters by running the filter once on a tiny image, so
that a bad value fails ``fit`` with the filter's own message, prefixed with
the entry at fault) and gives the margin (voxels per axis) a filter's support
needs around the ROI (:func:`filter_margin`).
"""

import copy
import math
import re

import numpy as np

from ..filters import filter_image

__all__ = [
    "IBSI2_KEY",
    "default_name",
    "filter_margin",
    "split_ibsi2",
    "validate_ibsi2",
]

#: key of the IBSI-2 filters in ``settings["imageType"]``
IBSI2_KEY = "IBSI2"
#: prefix of the feature names of an IBSI-2 filter's response map
PREFIX = "ibsi2-"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
# parameters that name a filter, in this order, with their short form
_NAMED_PARAMETERS = (
    ("kernel_size_voxels", "k"),
    ("sigma_mm", "s"),
    ("lambda_mm", "l"),
    ("gamma", "g"),
    ("theta_deg", "t"),
    ("kernel", ""),
    ("energy_distance_voxels", "e"),
    ("wavelet", ""),
    ("filter_set", ""),
    ("decomposition_level", "level"),
    ("order", "o"),
)
# a Gabor kernel's Gaussian envelope is below exp(-50) of its peak beyond
# this many sigmas (divided by min(1, gamma) along the narrow axis)
_GABOR_SIGMAS = 10.0


def _where(position, entry=None):
    name = entry.get("name") if isinstance(entry, dict) else None
    tail = f" ({name!r})" if isinstance(name, str) else ""
    return f"settings['imageType']['{IBSI2_KEY}'][{position}]{tail}"


def split_ibsi2(params):
    """Return ``(params without the IBSI-2 filters, the filters or None)``.

    Parameters
    ----------
    params : dict
        PyRadiomics parameters, possibly with ``imageType["IBSI2"]``.

    Returns
    -------
    (dict, list or None)
        A copy of ``params`` that PyRadiomics' schema can check, and the
        IBSI-2 entries (None where there are none).

    Examples
    --------
    >>> from sklearn_medprep.radiomics._ibsi2_settings import split_ibsi2
    >>> split_ibsi2({"imageType": {"Original": {}, "IBSI2": []}})
    ({'imageType': {'Original': {}}}, [])
    >>> split_ibsi2({"setting": {"binWidth": 5}})
    ({'setting': {'binWidth': 5}}, None)
    """
    params = copy.deepcopy(params)
    image_types = params.get("imageType")
    if not isinstance(image_types, dict) or IBSI2_KEY not in image_types:
        return params, None
    filters = image_types.pop(IBSI2_KEY)
    return params, filters


def _number(value):
    text = f"{float(value):g}" if not isinstance(value, str) else value
    return text.replace(".", "-").replace("+", "")


def default_name(entry):
    """Return the name an IBSI-2 entry gets without one.

    The family, its main parameters (short forms: ``k`` kernel size, ``s``
    sigma in mm, ``l`` wavelength in mm, ``g`` gamma, ``t`` angle, ``e``
    energy distance), ``2D`` for a filter by slice and the pooling of a
    rotation-invariant filter.

    Examples
    --------
    >>> from sklearn_medprep.radiomics._ibsi2_settings import default_name
    >>> default_name({"family": "mean", "kernel_size_voxels": 5})
    'mean-k5'
    >>> default_name({"family": "laplacian_of_gaussian", "sigma_mm": 1.5,
    ...               "by_slice": True})
    'log-s1-5-2D'
    >>> default_name({"family": "laws", "kernel": "L5E5E5", "energy_map": True,
    ...               "energy_distance_voxels": 7, "rotation_invariance": True,
    ...               "pooling": "max"})
    'laws-L5E5E5-e7-max'
    """
    spec = entry
    family = str(spec["family"])
    short = {"laplacian_of_gaussian": "log", "separable_wavelet": "wavelet",
             "nonseparable_wavelet": "nswavelet"}.get(family, family)
    parts = [short.replace("_", "-")]
    for key, tag in _NAMED_PARAMETERS:
        value = spec.get(key)
        if value is None or isinstance(value, (bool, list, dict)):
            continue
        if key == "energy_distance_voxels" and not spec.get("energy_map", True):
            continue
        parts.append(f"{tag}{_number(value)}")
    if entry.get("by_slice"):
        parts.append("2D")
    if entry.get("rotation_invariance"):
        parts.append(str(entry.get("pooling") or "inv"))
    name = "-".join(parts)
    return re.sub(r"[^A-Za-z0-9-]", "-", name)


def validate_ibsi2(filters):
    """Check the IBSI-2 entries; return them with their names filled in.

    Parameters
    ----------
    filters : list of dict
        ``settings["imageType"]["IBSI2"]``.

    Returns
    -------
    list of dict
        Copies, each with ``name`` set.

    Raises
    ------
    ValueError
        Naming the entry (its position and name) and the setting at fault: not
        a list of mappings, no ``family``, a name that is not letters, digits
        and ``-``, two entries with one name, or a parameter the filter refuses
        (its own message).

    Examples
    --------
    >>> from sklearn_medprep.radiomics._ibsi2_settings import validate_ibsi2
    >>> validate_ibsi2([{"family": "mean", "kernel_size_voxels": 3,
    ...                  "boundary": "reflect"}])[0]["name"]
    'mean-k3'
    >>> validate_ibsi2([{"family": "mean", "kernel_size_voxels": 3,
    ...                  "boundary": "mirror"}])
    Traceback (most recent call last):
    ...
    ValueError: settings['imageType']['IBSI2'][0] ('mean-k3'): ...
    """
    if not isinstance(filters, list):
        raise ValueError(
            f"settings['imageType']['{IBSI2_KEY}'] must be a list of filter "
            f"configurations, got {type(filters).__name__}"
        )
    out = []
    names = {}
    for position, entry in enumerate(filters):
        where = _where(position, entry)
        if not isinstance(entry, dict):
            raise ValueError(f"{where} must be a mapping with keys 'family', "
                             f"'boundary', ..., got {type(entry).__name__}")
        if not isinstance(entry.get("family"), str):
            raise ValueError(f"{where}: no 'family' (e.g. {{'family': 'mean', "
                             "'kernel_size_voxels': 5, 'boundary': 'reflect'}})")
        entry = copy.deepcopy(entry)
        name = entry.get("name")
        if name is None:
            name = default_name(entry)
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"{where}: 'name' must be letters, digits and '-' "
                             f"(it prefixes feature names), got {name!r}")
        if name.lower() in names:
            raise ValueError(
                f"{_where(position, {'name': name})}: name {name!r} is also "
                f"entry {names[name.lower()]}'s; give each entry a distinct 'name'"
            )
        names[name.lower()] = position
        entry["name"] = name
        config = filter_config(entry)
        try:  # the filter's own checks of every parameter, on a tiny image
            filter_image(np.zeros((5, 6, 7)), (1.0, 1.0, 1.0), config)
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"{_where(position, entry)}: {exc}") from exc
        out.append(entry)
    return out


def filter_config(entry):
    """The configuration :func:`~sklearn_medprep.filters.filter_image` takes."""
    return {key: value for key, value in entry.items() if key != "name"}


def _laws_length(kernel):
    lengths = {int(part[1]) for part in re.findall(r"[A-Z][0-9]", str(kernel))}
    return max(lengths) if lengths else None


def filter_margin(entry, spacing):
    """Voxels around the ROI's box that a filter's values inside it depend on.

    Parameters
    ----------
    entry : dict
        A validated IBSI-2 entry.
    spacing : sequence of float
        Voxel spacing in SimpleITK (x, y, z) order.

    Returns
    -------
    tuple of int or None
        The margin per axis, (x, y, z) order; None where the filter reads the
        whole image (Fourier-domain filters, an unknown family).

    Examples
    --------
    >>> from sklearn_medprep.radiomics._ibsi2_settings import filter_margin
    >>> filter_margin({"family": "mean", "kernel_size_voxels": 5}, (1.0, 1.0, 3.0))
    (2, 2, 2)
    >>> filter_margin({"family": "laplacian_of_gaussian", "sigma_mm": 1.5,
    ...                "by_slice": True}, (1.0, 1.0, 3.0))
    (7, 7, 0)
    """
    spec = entry
    family = spec["family"]
    spacing = [float(s) for s in spacing]
    if family == "mean":
        margin = [int(spec.get("kernel_size_voxels", 3)) // 2] * len(spacing)
    elif family == "laplacian_of_gaussian":
        sigma = float(spec["sigma_mm"])
        truncate = float(spec.get("kernel_truncate_sigmas", 4.0))
        margin = [int(math.floor(truncate * sigma / s + 0.5)) + 1 for s in spacing]
    elif family == "laws":
        length = _laws_length(spec.get("kernel"))
        if length is None:
            return None
        radius = length // 2
        if spec.get("energy_map"):
            radius += int(spec.get("energy_distance_voxels", 7))
        margin = [radius] * len(spacing)
    elif family == "gabor":
        gamma = float(spec.get("gamma", 1.0))
        sigma = float(spec["sigma_mm"]) / min(spacing) / min(1.0, gamma)
        radius = int(math.ceil(_GABOR_SIGMAS * sigma)) + 1
        if entry.get("rotation_invariance") and not entry.get("by_slice"):
            margin = [radius] * len(spacing)  # in the xz and yz planes too
        else:
            margin = [radius, radius] + [0] * (len(spacing) - 2)
    elif family == "separable_wavelet":
        import pywt

        length = pywt.Wavelet(str(spec.get("wavelet", "db3"))).dec_len
        level = int(spec.get("decomposition_level", 1))
        # a-trous: level j's kernel is dilated by 2**(j-1)
        margin = [length * (2**level - 1) + 1] * len(spacing)
    else:
        return None
    if entry.get("by_slice") and len(margin) == 3:
        margin[2] = 0
    return tuple(margin)
