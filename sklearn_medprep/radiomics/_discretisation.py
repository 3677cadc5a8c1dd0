"""IBSI "no discretisation": texture features whose grey levels are the intensities.

PyRadiomics discretises with a fixed bin width starting at the ROI minimum:
with ``binWidth: 1`` on an image of integer intensities, bin ``b = x - m + 1``
(``m`` the ROI minimum), so each intensity is its own bin, but the bins are
renumbered from 1. The features that use the grey-level *values* (joint and
sum averages, autocorrelation, the low/high grey level emphases, busyness, the
normalised inverse differences...) then describe ``x - m + 1`` instead of ``x``:
right only when the ROI's intensities start at 1.

The PyRadiomics-backend setting ``noDiscretization: true`` (in ``setting``;
the ``"ibsi"`` preset sets it) computes the texture features with grey levels
equal to the intensities, IBSI's "no discretisation": PyRadiomics builds its
matrices on its own bins (bit-identical to ``binWidth: 1``; on integer
intensities they are the exact shift ``b = x - (m - 1)``), and the grey-level
values its feature classes compute with (GLCM: ``i``, ``j``, their means, the
sums ``k = i + j`` and the largest grey level ``Ng``; ``ivector`` of GLRLM,
GLSZM, GLDM and NGTDM) are shifted back by ``m - 1``: the cost is PyRadiomics'
with ``binWidth: 1``. Nothing else changes; first-order features use the
intensities already.

Rules (each refused with an error naming the setting or the file):

- the intensities inside the ROI must be integers >= 1 (IBSI's requirement for
  "no discretisation": the low grey level emphases divide by the grey level);
  a non-integer image (or one made non-integer by resampling or normalisation)
  is refused;
- ``binWidth`` is 1 (set when absent), ``binCount`` is not given;
- only the ``Original`` image type: filtered images are not integer.
"""

import numpy as np

from ..exceptions import SubjectTableError

__all__ = [
    "NO_DISCRETIZATION",
    "check_intensities",
    "intensity_extractor",
    "split_option",
]

#: Key in ``settings["setting"]`` of the option (PyRadiomics' own schema does
#: not know it: it is removed before PyRadiomics validates the settings)
NO_DISCRETIZATION = "noDiscretization"

_TEXTURE = ("glcm", "glrlm", "glszm", "gldm", "ngtdm")


def split_option(settings):
    """Return ``(settings without the option, enabled)``; check the option's rules.

    Parameters
    ----------
    settings : dict
        PyRadiomics parameters, possibly with ``setting: {noDiscretization: ...}``.

    Returns
    -------
    dict
        A copy of ``settings`` without the option (the input is not changed).
    bool
        Whether "no discretisation" is enabled.

    Raises
    ------
    ValueError
        The option is not a boolean, or is combined with ``binCount``, a
        ``binWidth`` other than 1, or an image type other than ``Original``.

    Examples
    --------
    >>> from sklearn_medprep.radiomics._discretisation import split_option
    >>> split_option({"setting": {"binWidth": 1, "noDiscretization": True}})
    ({'setting': {'binWidth': 1}}, True)
    >>> split_option({"setting": {"binWidth": 25}})
    ({'setting': {'binWidth': 25}}, False)
    """
    options = settings.get("setting") or {}
    if NO_DISCRETIZATION not in options:
        return settings, False
    value = options[NO_DISCRETIZATION]
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(
            f"invalid PyRadiomics settings: setting {NO_DISCRETIZATION!r} must be "
            f"true or false, got {value!r}"
        )
    rest = {key: val for key, val in options.items() if key != NO_DISCRETIZATION}
    out = {**settings, "setting": rest}
    if not rest:
        del out["setting"]
    if not value:
        return out, False
    problem = _conflict(out)
    if problem:
        raise ValueError(
            f"invalid PyRadiomics settings: setting {NO_DISCRETIZATION!r} (IBSI "
            f"'no discretisation': grey levels are the intensities) {problem}"
        )
    return out, True


def _conflict(settings):
    """Why ``settings`` cannot be computed without discretisation, or None."""
    image_types = settings.get("imageType") or {"Original": {}}
    others = sorted(set(image_types) - {"Original"})
    if others:
        return (f"applies to the Original image only (filtered images are not "
                f"integer-valued); remove image type(s) {others}")
    places = [("setting", settings.get("setting") or {}),
              ("imageType/Original", image_types.get("Original") or {})]
    for place, options in places:
        if options.get("binCount") is not None:
            return f"cannot be combined with binCount (in {place})"
        width = options.get("binWidth")
        if width is not None and width != 1:
            return f"needs binWidth 1 or none, got binWidth {width!r} (in {place})"
    return None


def check_intensities(image, mask, label):
    """Refuse an image whose ROI intensities are not integers >= 1.

    Parameters
    ----------
    image, mask : SimpleITK.Image
        Image and mask (same grid).
    label : int
        The ROI's label.

    Raises
    ------
    SubjectTableError
        With ``column="image"`` (the row's image file is added by the caller).

    Examples
    --------
    >>> import numpy as np, SimpleITK as sitk
    >>> from sklearn_medprep.radiomics._discretisation import check_intensities
    >>> image = sitk.GetImageFromArray(np.array([[[1.0, 2.5]]]))
    >>> mask = sitk.GetImageFromArray(np.array([[[1, 1]]], dtype=np.uint8))
    >>> check_intensities(image, mask, 1)
    Traceback (most recent call last):
    ...
    sklearn_medprep.exceptions.SubjectTableError: [column 'image'] \
noDiscretization (IBSI 'no discretisation') needs integer intensities >= 1 \
inside the ROI (label 1); 1 voxel(s) are not integers (e.g. 2.5): discretise \
instead (binWidth/binCount) or round the image
    """
    import SimpleITK as sitk

    values = sitk.GetArrayViewFromImage(image)[
        sitk.GetArrayViewFromImage(mask) == label]
    problem = _intensity_problem(values)
    if problem:
        raise SubjectTableError(
            f"{NO_DISCRETIZATION} (IBSI 'no discretisation') needs integer "
            f"intensities >= 1 inside the ROI (label {label}); {problem}",
            column="image",
        )


def _intensity_problem(values):
    """What makes ``values`` unusable as grey levels, or None."""
    values = np.asarray(values)
    if values.size == 0:
        return None
    if not np.issubdtype(values.dtype, np.integer):
        bad = values[values != np.round(values)]
        if bad.size:
            example = bad.flat[0].item()
            return (f"{bad.size} voxel(s) are not integers (e.g. {example!r}): "
                    "discretise instead (binWidth/binCount) or round the image")
    low = values.min()
    if low < 1:
        return (f"the smallest is {low.item()!r}: shift the image so that the "
                "intensities start at 1 or more, or discretise instead")
    return None


_CLASSES = {}  # per process: the feature classes with the intensities as grey levels


def _feature_classes():
    """PyRadiomics' feature classes, the texture ones computing on intensities."""
    if _CLASSES:
        return _CLASSES
    from radiomics import getFeatureClasses

    classes = dict(getFeatureClasses())

    class _Intensities:
        """Mixin: bins as PyRadiomics makes them, their offset from the intensities."""

        def _applyBinning(self, matrix):
            values = matrix[self.maskArray]
            problem = _intensity_problem(values)
            if problem:
                raise ValueError(
                    f"{NO_DISCRETIZATION}: the image the features are computed on "
                    f"(after PyRadiomics' resampling and normalisation) needs "
                    f"integer intensities >= 1 inside the ROI; {problem}"
                )
            binned = super()._applyBinning(matrix)
            offset = int(values.min()) - 1 if values.size else 0
            if not np.array_equal(binned[self.maskArray], values - offset):
                raise RuntimeError("PyRadiomics' bins are not a shift of the "
                                   "intensities (binWidth must be 1)")
            self._offset = offset
            return binned

    class GLCM(_Intensities, classes["glcm"]):
        def _calculateCoefficients(self):
            super()._calculateCoefficients()
            # on intensities: i, j and their means move by the offset, the sums
            # i + j (the values k of p_{x+y}) by twice it, the differences not;
            # Ng (normalised inverse differences) is the largest intensity
            coefficients, offset = self.coefficients, self._offset
            for key in ("i", "j", "ux", "uy", "grayLevels", "Ng"):
                coefficients[key] = coefficients[key] + offset
            coefficients["kValuesSum"] = coefficients["kValuesSum"] + 2 * offset

    def shifted(base):
        class Shifted(_Intensities, base):
            def _initCalculation(self, voxelCoordinates=None):
                super()._initCalculation(voxelCoordinates)
                self.coefficients["ivector"] = (
                    self.coefficients["ivector"] + self._offset)

        Shifted.__name__ = Shifted.__qualname__ = base.__name__
        return Shifted

    classes["glcm"] = GLCM
    GLCM.__name__ = GLCM.__qualname__ = classes["glcm"].__mro__[2].__name__
    for name in _TEXTURE[1:]:
        classes[name] = shifted(classes[name])
    for name in _TEXTURE:
        # PyRadiomics' feature classes log to the logger of their module: keep
        # theirs (``radiomics.glcm``...), under PyRadiomics' verbosity
        classes[name].__module__ = classes[name].__mro__[2].__module__
    _CLASSES.update(classes)
    return _CLASSES


def intensity_extractor(params):
    """A PyRadiomics extractor whose texture features use the intensities.

    Parameters
    ----------
    params : dict
        PyRadiomics parameters without the option (see :func:`split_option`);
        ``binWidth`` is set to 1.

    Returns
    -------
    radiomics.featureextractor.RadiomicsFeatureExtractor
        An instance of a subclass computing each feature class with
        :func:`_feature_classes`.
    """
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    classes = _feature_classes()

    class IntensityFeatureExtractor(RadiomicsFeatureExtractor):
        def computeFeatures(self, image, mask, imageTypeName, **kwargs):
            # PyRadiomics' loop over the enabled classes, with our classes
            features = {}
            for class_name, names in self.enabledFeatures.items():
                if class_name.startswith("shape") or class_name not in classes:
                    continue
                feature_class = classes[class_name](image, mask, **kwargs)
                for name in names or ():
                    feature_class.enableFeatureByName(name)
                for name, value in feature_class.execute().items():
                    features[f"{imageTypeName}_{class_name}_{name}"] = value
            return features

    params = {**params, "setting": {**(params.get("setting") or {}), "binWidth": 1}}
    return IntensityFeatureExtractor(params)
