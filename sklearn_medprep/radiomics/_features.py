"""PyRadiomics' ``computeFeatures`` with one grey-level discretisation per image.

For each (filtered) image, PyRadiomics' ``RadiomicsFeatureExtractor.computeFeatures``
instantiates every enabled feature class (firstorder, glcm, glrlm, glszm, gldm,
ngtdm), and each instance

- discretises the ROI (``_applyBinning``: bin edges, ``numpy.digitize``, the
  grey levels present) from the same image, mask and settings, and
- lists its own feature names by introspection (``getFeatureNames``:
  ``inspect.getmembers`` of the class).

:func:`compute_features` does the same with subclasses of PyRadiomics' own
classes that discretise once per image (the first class does it; the others get
copies of its result) and introspect once per class. Everything else, every
feature formula included, is PyRadiomics' code: the values are PyRadiomics'
bit for bit (tests/radiomics/test_radiomics_crop.py compares the two).
"""

import collections

__all__ = ["compute_features"]

_FAST = {}  # PyRadiomics feature class -> its subclass below


def _fast_class(base):
    """The subclass of ``base`` that shares its discretisation (see above)."""
    fast = _FAST.get(base)
    if fast is not None:
        return fast
    names = base.getFeatureNames()

    def getFeatureNames(cls):  # noqa: N802 - PyRadiomics' name
        return dict(names)

    def _applyBinning(self, matrix):  # noqa: N802 - PyRadiomics' name
        shared = self._shared_binning
        if shared is None or self.voxelBased:
            return base._applyBinning(self, matrix)
        if "binned" not in shared:
            binned = base._applyBinning(self, matrix)
            shared["binned"] = (binned.copy(), self.coefficients["grayLevels"].copy(),
                                self.coefficients["Ng"])
            return binned
        binned, levels, n_levels = shared["binned"]
        self.coefficients["grayLevels"] = levels.copy()
        self.coefficients["Ng"] = n_levels
        return binned.copy()

    fast = type(base.__name__, (base,), {
        # PyRadiomics' loggers (and verbosity) by module, as the base class
        "__module__": base.__module__,
        "__doc__": base.__doc__,
        "_shared_binning": None,
        "getFeatureNames": classmethod(getFeatureNames),
        "_applyBinning": _applyBinning,
    })
    _FAST[base] = fast
    return fast


def compute_features(extractor, image, mask, image_type_name, **kwargs):
    """Return ``extractor.computeFeatures(image, mask, image_type_name, **kwargs)``.

    Parameters
    ----------
    extractor : radiomics.featureextractor.RadiomicsFeatureExtractor
        Its ``enabledFeatures`` say which classes and features.
    image, mask : SimpleITK.Image
        The (filtered) image and the mask, cropped to the ROI.
    image_type_name : str
        Prefix of the feature names (``"original"``, ``"log-sigma-1-0-mm-3D"``).
    **kwargs
        Settings of this image type.

    Returns
    -------
    collections.OrderedDict
    """
    from radiomics import getFeatureClasses
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    if type(extractor).computeFeatures is not RadiomicsFeatureExtractor.computeFeatures:
        # an extractor with its own feature classes (IBSI "no discretisation",
        # radiomics._discretisation): its own loop, as ``execute`` would call it
        return extractor.computeFeatures(image, mask, image_type_name, **kwargs)
    classes = getFeatureClasses()
    shared = {}  # this image's discretisation, made by the first class
    out = collections.OrderedDict()
    for class_name, feature_names in extractor.enabledFeatures.items():
        if class_name.startswith("shape") or class_name not in classes:
            continue
        cls = _fast_class(classes[class_name])
        instance = cls.__new__(cls)
        instance._shared_binning = shared
        instance.__init__(image, mask, **kwargs)
        if feature_names is not None:
            for name in feature_names:
                instance.enableFeatureByName(name)
        for name, value in instance.execute().items():
            out[f"{image_type_name}_{class_name}_{name}"] = value
    return out
