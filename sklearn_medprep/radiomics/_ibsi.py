"""IBSI-1 preset: settings, IBSI definitions where PyRadiomics differs, phantom table.

``RadiomicsExtractor(settings="ibsi")`` extracts with :data:`IBSI_SETTINGS` (each
choice documented there), adds the IBSI-1 features PyRadiomics lacks
(``original_ibsi_*``, :mod:`sklearn_medprep.radiomics._ibsi_families`) and
applies :func:`apply_ibsi_definitions`, which
replaces the three PyRadiomics features whose definition differs from the IBSI
reference manual by IBSI's, under names that show the difference:

- ``*_firstorder_Kurtosis`` (PyRadiomics: the plain fourth standardised moment)
  becomes ``*_firstorder_ExcessKurtosis`` (IBSI 3.3.4: the same minus 3);
- ``original_shape_{Major,Minor,Least}AxisLength`` (PyRadiomics: 4 sqrt of the
  eigenvalues of the covariance matrix of the ROI voxel positions divided by
  ``N``) become ``original_shape_{Major,Minor,Least}AxisLengthIBSI`` (IBSI 3.1.11-
  3.1.13: the covariance divided by ``N - 1``), i.e. multiplied by
  ``sqrt(N / (N - 1))`` with ``N`` the number of ROI voxels. Elongation and
  flatness are ratios of these lengths and do not change.

:mod:`sklearn_medprep.radiomics._ibsi_phantom` compares the preset on the IBSI-1
digital phantom with the consensus values, feature by feature.
"""

import copy
import math

from ._ibsi_families import FAMILY_FEATURES

__all__ = [
    "IBSI_FEATURE_MAP",
    "IBSI_SETTINGS",
    "PYRADIOMICS_FEATURE_MAP",
    "apply_ibsi_definitions",
    "ibsi_settings",
]

#: PyRadiomics parameters of the ``"ibsi"`` preset (IBSI-1 digital phantom
#: configuration). One line per choice:
IBSI_SETTINGS = {
    # IBSI-1 features are computed on the unfiltered image (filters are IBSI-2)
    "imageType": {"Original": {}},
    # every 3D feature family PyRadiomics has (IBSI morphology, intensity
    # statistics, intensity histogram, GLCM, GLRLM, GLSZM, NGTDM, NGLDM)
    "featureClass": {
        "shape": [],
        "firstorder": [],
        "glcm": [],
        "glrlm": [],
        "glszm": [],
        "gldm": [],
        "ngtdm": [],
    },
    "setting": {
        # IBSI's "no discretisation" of the phantom configuration: texture
        # features with grey levels equal to the intensities (integers >= 1),
        # not PyRadiomics' bins renumbered from the ROI minimum (see
        # sklearn_medprep.radiomics._discretisation); with fixed bin size 1, so
        # that each intensity is its own bin
        "binWidth": 1,
        "noDiscretization": True,
        # no resampling, no normalisation, no re-segmentation (phantom config)
        "resampledPixelSpacing": None,
        "normalize": False,
        "resegmentRange": None,
        # volumetric (3D) texture matrices, not slice by slice
        "force2D": False,
        # neighbours at Chebyshev distance 1, 13 (26 symmetric) directions
        "distances": [1],
        # IBSI's co-occurrence matrix is symmetric
        "symmetricalGLCM": True,
        # GLCM and GLRLM features are computed per direction and averaged
        # (IBSI "3D, averaged"); no distance weighting
        "weightingNorm": None,
        # NGLDM coarseness parameter a = 0 (IBSI's value for the phantom)
        "gldm_a": 0,
        # energy and RMS of the raw intensities, as IBSI defines them
        "voxelArrayShift": 0,
        "additionalInfo": False,
    },
}

_SHAPE = {
    "MeshVolume": "morph_volume",
    "VoxelVolume": "morph_vol_approx",
    "SurfaceArea": "morph_area_mesh",
    "SurfaceVolumeRatio": "morph_av",
    "Sphericity": "morph_sphericity",
    "Maximum3DDiameter": "morph_diam",
    "MajorAxisLengthIBSI": "morph_pca_maj_axis",
    "MinorAxisLengthIBSI": "morph_pca_min_axis",
    "LeastAxisLengthIBSI": "morph_pca_least_axis",
    "Elongation": "morph_pca_elongation",
    "Flatness": "morph_pca_flatness",
}
_FIRSTORDER = {
    "Mean": "stat_mean",
    "Variance": "stat_var",
    "Skewness": "stat_skew",
    "ExcessKurtosis": "stat_kurt",
    "Median": "stat_median",
    "Minimum": "stat_min",
    "10Percentile": "stat_p10",
    "90Percentile": "stat_p90",
    "Maximum": "stat_max",
    "InterquartileRange": "stat_iqr",
    "Range": "stat_range",
    "MeanAbsoluteDeviation": "stat_mad",
    "RobustMeanAbsoluteDeviation": "stat_rmad",
    "Energy": "stat_energy",
    "RootMeanSquared": "stat_rms",
    "Entropy": "ih_entropy",
    "Uniformity": "ih_uniformity",
}
_GLCM = {
    "Autocorrelation": "auto_corr",
    "JointAverage": "joint_avg",
    "ClusterProminence": "clust_prom",
    "ClusterShade": "clust_shade",
    "ClusterTendency": "clust_tend",
    "Contrast": "contrast",
    "Correlation": "corr",
    "DifferenceAverage": "diff_avg",
    "DifferenceEntropy": "diff_entr",
    "DifferenceVariance": "diff_var",
    "JointEnergy": "energy",
    "JointEntropy": "joint_entr",
    "Imc1": "info_corr1",
    "Imc2": "info_corr2",
    "Idm": "inv_diff_mom",
    "Idmn": "inv_diff_mom_norm",
    "Id": "inv_diff",
    "Idn": "inv_diff_norm",
    "InverseVariance": "inv_var",
    "MaximumProbability": "joint_max",
    "SumAverage": "sum_avg",
    "SumEntropy": "sum_entr",
    "SumSquares": "joint_var",
}
_GLRLM = {
    "ShortRunEmphasis": "sre",
    "LongRunEmphasis": "lre",
    "LowGrayLevelRunEmphasis": "lgre",
    "HighGrayLevelRunEmphasis": "hgre",
    "ShortRunLowGrayLevelEmphasis": "srlge",
    "ShortRunHighGrayLevelEmphasis": "srhge",
    "LongRunLowGrayLevelEmphasis": "lrlge",
    "LongRunHighGrayLevelEmphasis": "lrhge",
    "GrayLevelNonUniformity": "glnu",
    "GrayLevelNonUniformityNormalized": "glnu_norm",
    "RunLengthNonUniformity": "rlnu",
    "RunLengthNonUniformityNormalized": "rlnu_norm",
    "RunPercentage": "r_perc",
    "GrayLevelVariance": "gl_var",
    "RunVariance": "rl_var",
    "RunEntropy": "rl_entr",
}
_GLSZM = {
    "SmallAreaEmphasis": "sze",
    "LargeAreaEmphasis": "lze",
    "LowGrayLevelZoneEmphasis": "lgze",
    "HighGrayLevelZoneEmphasis": "hgze",
    "SmallAreaLowGrayLevelEmphasis": "szlge",
    "SmallAreaHighGrayLevelEmphasis": "szhge",
    "LargeAreaLowGrayLevelEmphasis": "lzlge",
    "LargeAreaHighGrayLevelEmphasis": "lzhge",
    "GrayLevelNonUniformity": "glnu",
    "GrayLevelNonUniformityNormalized": "glnu_norm",
    "SizeZoneNonUniformity": "zsnu",
    "SizeZoneNonUniformityNormalized": "zsnu_norm",
    "ZonePercentage": "z_perc",
    "GrayLevelVariance": "gl_var",
    "ZoneVariance": "zs_var",
    "ZoneEntropy": "zs_entr",
}
_NGTDM = {
    "Coarseness": "coarseness",
    "Contrast": "contrast",
    "Busyness": "busyness",
    "Complexity": "complexity",
    "Strength": "strength",
}
_GLDM = {
    "SmallDependenceEmphasis": "lde",
    "LargeDependenceEmphasis": "hde",
    "LowGrayLevelEmphasis": "lgce",
    "HighGrayLevelEmphasis": "hgce",
    "SmallDependenceLowGrayLevelEmphasis": "ldlge",
    "SmallDependenceHighGrayLevelEmphasis": "ldhge",
    "LargeDependenceLowGrayLevelEmphasis": "hdlge",
    "LargeDependenceHighGrayLevelEmphasis": "hdhge",
    "GrayLevelNonUniformity": "glnu",
    "DependenceNonUniformity": "dcnu",
    "DependenceNonUniformityNormalized": "dcnu_norm",
    "GrayLevelVariance": "gl_var",
    "DependenceVariance": "dc_var",
    "DependenceEntropy": "dc_entr",
}


def _feature_map():
    out = {}
    for name, ibsi in _SHAPE.items():
        out[f"original_shape_{name}"] = ibsi
    for name, ibsi in _FIRSTORDER.items():
        out[f"original_firstorder_{name}"] = ibsi
    for name, ibsi in _GLCM.items():
        out[f"original_glcm_{name}"] = f"cm_{ibsi}_d1_3d_avg"
    for name, ibsi in _GLRLM.items():
        out[f"original_glrlm_{name}"] = f"rlm_{ibsi}_3d_avg"
    for name, ibsi in _GLSZM.items():
        out[f"original_glszm_{name}"] = f"szm_{ibsi}_3d"
    for name, ibsi in _NGTDM.items():
        out[f"original_ngtdm_{name}"] = f"ngt_{ibsi}_3d"
    for name, ibsi in _GLDM.items():
        out[f"original_gldm_{name}"] = f"ngl_{ibsi}_d1_a0.0_3d"
    return out


#: PyRadiomics' feature name (``settings="ibsi"``) -> IBSI-1 feature identifier
#: of the 3D configuration of the digital phantom (102 features).
PYRADIOMICS_FEATURE_MAP = _feature_map()

#: Our feature name (``settings="ibsi"``) -> IBSI-1 feature identifier of the
#: 3D configuration of the digital phantom: PyRadiomics' 102, then the features
#: the library computes for what PyRadiomics lacks (``original_ibsi_<IBSI id>``,
#: :mod:`sklearn_medprep.radiomics._ibsi_families`).
IBSI_FEATURE_MAP = {**PYRADIOMICS_FEATURE_MAP, **FAMILY_FEATURES}

_AXES = ("MajorAxisLength", "MinorAxisLength", "LeastAxisLength")
# our IBSI-mode name -> PyRadiomics' name of the feature it replaces
_PYRADIOMICS_NAME = {
    "original_firstorder_ExcessKurtosis": "original_firstorder_Kurtosis",
    **{f"original_shape_{axis}IBSI": f"original_shape_{axis}" for axis in _AXES},
}


def ibsi_settings():
    """Return a fresh copy of the PyRadiomics parameters of the ``"ibsi"`` preset.

    Returns
    -------
    dict

    Examples
    --------
    >>> from sklearn_medprep.radiomics._ibsi import ibsi_settings
    >>> ibsi_settings()["setting"]["binWidth"]
    1
    """
    return copy.deepcopy(IBSI_SETTINGS)


def apply_ibsi_definitions(values, n_voxels):
    """Replace PyRadiomics' definitions by IBSI's where they differ (see module).

    Parameters
    ----------
    values : list of (str, object)
        Feature names and values as PyRadiomics returns them, in order.
    n_voxels : int
        Number of voxels of the ROI the shape features were computed on.

    Returns
    -------
    list of (str, object)
        Same order; renamed and corrected entries in place of the originals.

    Examples
    --------
    >>> from sklearn_medprep.radiomics._ibsi import apply_ibsi_definitions
    >>> apply_ibsi_definitions([("original_firstorder_Kurtosis", 2.5),
    ...                         ("original_shape_MajorAxisLength", 4.0)], 5)
    [('original_firstorder_ExcessKurtosis', -0.5), \
('original_shape_MajorAxisLengthIBSI', 4.47213595499958)]
    """
    factor = math.sqrt(n_voxels / (n_voxels - 1)) if n_voxels > 1 else math.nan
    out = []
    for name, value in values:
        head, _, feature = name.rpartition("_")
        if head.endswith("_firstorder") and feature == "Kurtosis":
            out.append((f"{head}_ExcessKurtosis", value - 3.0))
        elif head.endswith("_shape") and feature in _AXES:
            out.append((f"{head}_{feature}IBSI", value * factor))
        else:
            out.append((name, value))
    return out






