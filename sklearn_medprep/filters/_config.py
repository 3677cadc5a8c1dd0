"""Filter configurations: a configurations.json entry made flat, shared keys checked.

IBSI-2's configurations.json writes a test as an entry with the family's
parameters under ``filter`` and the keys every family shares (``boundary``,
``by_slice``, ``rotation_invariance``, ``pooling``) beside it;
:func:`~sklearn_medprep.filters.filter_image` takes one flat dict.
:func:`flat_config` turns the first into the second, and :func:`prepare` does
what the dispatcher does before it calls a family function (the family and its
keys checked, the shared keys checked and filled in, the image and spacing
checked), for :func:`~sklearn_medprep.filters.filter_image` and for the family
functions that can be called on their own (the wavelets and Riesz filters). A
family function registered with the dispatcher takes the prepared config and
checks none of the shared keys again.
"""

from ._boundary import check_boundary, check_image, get_param

__all__ = [
    "DEFINITIONS_REVISION", "POOLING_METHODS", "SHARED_KEYS", "flat_config", "prepare",
]

#: revision of the filters' definitions, part of the radiomics cache keys of
#: settings with IBSI-2 filters: raise it whenever a response map changes, so
#: that features cached with the former maps are not reused (revision 2: the
#: LoG with IBSI's normalisation of the sampled Gaussian instead of scipy's
#: renormalised truncated one, a relative change of up to 3e-5 at 4 widths)
DEFINITIONS_REVISION = 2

#: keys of a configurations.json test entry that sit beside ``filter``
SHARED_KEYS = ("boundary", "by_slice", "rotation_invariance", "pooling")

#: voxel-wise pooling over rotations / orientations
POOLING_METHODS = ("max", "min", "mean")

_COMMON_KEYS = frozenset({"family", "dimensionality", *SHARED_KEYS})

# descriptive keys of configurations.json's filter entries that restate the
# others for a reader (values for 2 mm voxels, angles as text multiples of pi,
# the plane names), accepted and not used; the restatements a family can check
# (Laws' per-axis letters, Gabor's orientation list) are that family's keys
_DESCRIPTIVE_KEYS = frozenset({
    "derived_for_2mm_voxels", "theta_rad", "theta_step_rad", "planes",
    "kernel_dimensionality",
})


def flat_config(config):
    """The filter configuration as one flat dict (a new one).

    Accepts either the flat form :func:`~sklearn_medprep.filters.filter_image`
    takes (``family`` and its parameters next to ``boundary``, ``by_slice``,
    ``rotation_invariance``, ``pooling``) or a whole configurations.json test
    entry (the parameters under ``filter``): the ``filter`` dict, plus those of
    the shared keys the entry has (an absent one stays absent; the other keys
    of the entry, such as ``image`` or ``criterion``, are left out).

    Parameters
    ----------
    config : dict

    Returns
    -------
    dict

    Raises
    ------
    ValueError
        If ``config`` or its ``filter`` is not a dict.

    Examples
    --------
    >>> flat_config({"filter": {"family": "mean", "kernel_size_voxels": 3},
    ...              "boundary": "wrap", "image": "phantom.nii.gz"})
    {'family': 'mean', 'kernel_size_voxels': 3, 'boundary': 'wrap'}
    """
    if not isinstance(config, dict):
        raise ValueError(f"config: expected a dict, got {type(config).__name__}")
    if "filter" not in config:
        return dict(config)
    nested = config["filter"]
    if not isinstance(nested, dict):
        raise ValueError(
            f"filter config key 'filter': expected a dict, got {type(nested).__name__}")
    flat = dict(nested)
    flat.update((key, config[key]) for key in SHARED_KEYS if key in config)
    return flat


def _dimensionality_agrees(text, by_slice):
    """configurations.json's "dimensionality" text against ``by_slice``.

    By slice is ``"2D"``; otherwise ``"3D"`` or, for Gabor, a text starting with
    ``"2D kernel in a 3D volume"``.
    """
    if not isinstance(text, str):
        return False
    if by_slice:
        return text == "2D"
    return text == "3D" or text.startswith("2D kernel in a 3D volume")


def prepare(function, image, spacing, config, families):
    """Check a flat config, the image and the spacing before ``function`` runs.

    Parameters
    ----------
    function : callable
        The family function; its ``accepted_keys`` (a set of its own keys, if
        it has one) refuse any other key, its ``default_boundary`` (if any)
        replaces ``"constant"`` as the boundary when none is given.
    image, spacing
        As :func:`~sklearn_medprep.filters.filter_image` takes them.
    config : dict
        A flat configuration (see :func:`flat_config`).
    families : sequence of str
        The family names ``function`` serves; ``config["family"]`` must be one
        of them (absent: the first).

    Returns
    -------
    image : ndarray of float64, shape (z, y, x)
    spacing : ndarray of float64, shape (3,)
    config : dict
        A copy of ``config`` with ``family``, ``boundary``, ``by_slice`` and
        ``rotation_invariance`` filled in and checked, and ``pooling`` checked
        where given or required.

    Raises
    ------
    ValueError
        Naming the key at fault, or the image or spacing.

    Examples
    --------
    >>> from sklearn_medprep.filters._mean import mean_response
    >>> _, _, config = prepare(mean_response, [[[1.0]]], (1, 1, 1),
    ...                        {"kernel_size_voxels": 1}, ["mean"])
    >>> sorted(config.items())  # doctest: +NORMALIZE_WHITESPACE
    [('boundary', 'constant'), ('by_slice', False), ('family', 'mean'),
     ('kernel_size_voxels', 1), ('rotation_invariance', False)]
    """
    config = dict(config)
    family = config.setdefault("family", families[0])
    if family not in families:
        raise ValueError(
            f"filter config key 'family': {family!r} is not one of {list(families)}")
    accepted = getattr(function, "accepted_keys", None)
    if accepted is not None:
        unknown = sorted(set(config) - _COMMON_KEYS - _DESCRIPTIVE_KEYS - set(accepted))
        if unknown:
            raise ValueError(
                f"filter config key {unknown[0]!r} is not a parameter of family "
                f"{family!r} (its keys: {sorted(accepted)}, and the shared keys "
                f"{sorted(_COMMON_KEYS)})")
    # no boundary given: the family's own (periodic for the Fourier-domain
    # Simoncelli families), else zero padding
    config["boundary"] = check_boundary(
        config.get("boundary") or getattr(function, "default_boundary", "constant"))
    config["by_slice"] = bool(get_param(config, "by_slice", "bool", default=False))
    config["rotation_invariance"] = bool(
        get_param(config, "rotation_invariance", "bool", default=False))
    dimensionality = config.get("dimensionality")
    if dimensionality is not None and not _dimensionality_agrees(
            dimensionality, config["by_slice"]):
        raise ValueError(
            f"filter config key 'dimensionality': {dimensionality!r} contradicts "
            f"by_slice={config['by_slice']} (by_slice True is '2D', False is '3D' or, "
            "for Gabor, '2D kernel in a 3D volume')")
    if config.get("pooling") is not None or config["rotation_invariance"]:
        config["pooling"] = get_param(config, "pooling", "str", choices=POOLING_METHODS)
    image, spacing = check_image(image, spacing)
    return image, spacing, config
