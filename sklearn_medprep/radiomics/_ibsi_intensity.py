"""IBSI-1 intensity features PyRadiomics lacks (IBSI reference manual, 3.2-3.5).

- :func:`intensity_features`: on the intensities, local intensity peaks (3.2),
  the three statistics PyRadiomics' first-order class has no counterpart for
  (median absolute deviation, coefficient of variation, quartile coefficient of
  dispersion; 3.3) and the intensity-volume histogram (3.5);
- :func:`histogram_features`: the intensity histogram (3.4) on the discretised
  grey levels ``1..Ng``, but entropy and uniformity (PyRadiomics'
  ``firstorder_Entropy`` and ``firstorder_Uniformity`` are those).

Percentiles are numpy's linear ones (as PyRadiomics' and mirp's).
"""

import math

import numpy as np
from scipy.signal import fftconvolve

__all__ = [
    "HISTOGRAM_FEATURES",
    "INTENSITY_FEATURES",
    "LOCAL_RADIUS_MM",
    "histogram_features",
    "intensity_features",
]

#: Radius (mm) of the sphere of 1 cm^3 of the local intensity peak (IBSI 3.2).
LOCAL_RADIUS_MM = (3.0 / (4.0 * math.pi)) ** (1.0 / 3.0) * 10.0

#: IBSI identifiers returned by :func:`intensity_features`, in order.
INTENSITY_FEATURES = (
    "loc_peak_loc",
    "loc_peak_glob",
    "stat_medad",
    "stat_cov",
    "stat_qcod",
    "ivh_v10",
    "ivh_v90",
    "ivh_i10",
    "ivh_i90",
    "ivh_diff_v10_v90",
    "ivh_diff_i10_i90",
)

#: IBSI identifiers returned by :func:`histogram_features`, in order.
HISTOGRAM_FEATURES = (
    "ih_mean",
    "ih_var",
    "ih_skew",
    "ih_kurt",
    "ih_median",
    "ih_min",
    "ih_p10",
    "ih_p90",
    "ih_max",
    "ih_mode",
    "ih_iqr",
    "ih_range",
    "ih_mad",
    "ih_rmad",
    "ih_medad",
    "ih_cov",
    "ih_qcod",
    "ih_max_grad",
    "ih_max_grad_g",
    "ih_min_grad",
    "ih_min_grad_g",
)


def _sphere(spacing, radius=LOCAL_RADIUS_MM):
    """Boolean ball of ``radius`` mm centred on the middle voxel."""
    extent = [int(math.floor(radius / s)) for s in spacing]
    axes = [np.arange(-e, e + 1) * s for e, s in zip(extent, spacing)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij", sparse=True)
    return (zz**2 + yy**2 + xx**2) <= radius**2 * (1 + 1e-12)


def local_means(intensities, mask, spacing):
    """Mean intensity in the 1 cm^3 sphere around each ROI voxel.

    Every voxel of ``intensities`` within :data:`LOCAL_RADIUS_MM` of the centre
    counts, inside the ROI or not; voxels beyond the array's edge do not (the
    mean is over the voxels present). Pass the image cropped with a margin of
    at least ``floor(LOCAL_RADIUS_MM / spacing)`` voxels per axis around the ROI
    for the value on the whole image.

    Returns
    -------
    ndarray
        Local means at the ROI voxels, in ``np.nonzero(mask)`` order.
    """
    values = np.asarray(intensities, float)
    ball = _sphere(spacing).astype(float)
    present = np.ones_like(values)
    # subtract the ROI mean: FFT rounding is relative to the largest value
    offset = float(values[mask].mean())
    total = fftconvolve(values - offset, ball, mode="same")
    count = fftconvolve(present, ball, mode="same")
    return total[mask] / np.rint(count[mask]) + offset


def _ivh(values, bin_width):
    """IBSI 3.5 on intensity bins of ``bin_width`` (lower edges as the levels)."""
    k = np.floor(values / bin_width).astype(np.int64)
    k_min, k_max = int(k.min()), int(k.max())
    counts = np.bincount(k - k_min, minlength=k_max - k_min + 1)
    levels = (np.arange(k_min, k_max + 1)) * bin_width
    # fraction of the ROI at or above each level
    nu = 1.0 - np.concatenate([[0], np.cumsum(counts)[:-1]]) / values.size
    span = k_max - k_min
    gamma = (np.arange(span + 1) / span) if span else np.full(1, math.nan)
    out = {}
    for p in (10, 90):
        above = nu[gamma >= p / 100.0]
        out[f"ivh_v{p}"] = float(above.max()) if above.size else math.nan
        low = levels[nu <= p / 100.0]
        out[f"ivh_i{p}"] = float(low.min()) if low.size else (k_max + 1) * bin_width
    out["ivh_diff_v10_v90"] = out["ivh_v10"] - out["ivh_v90"]
    out["ivh_diff_i10_i90"] = out["ivh_i10"] - out["ivh_i90"]
    return out


def intensity_features(intensities, mask, spacing, *, ivh_bin_width=1.0):
    """Local intensity peaks, three statistics and the intensity-volume histogram.

    Parameters
    ----------
    intensities : ndarray of shape (z, y, x)
        Image intensities (not discretised), with the margin around the ROI
        :func:`local_means` needs.
    mask : ndarray of bool, same shape
        The ROI.
    spacing : sequence of 3 float
        Voxel spacing (z, y, x) in mm.
    ivh_bin_width : float, default=1.0
        Width of the intensity bins of the intensity-volume histogram, edges at
        its multiples; each bin is represented by its lower edge. For integer
        intensities (CT, the IBSI-1 phantom) width 1 is IBSI's "no
        discretisation" of the phantom configuration.

    Returns
    -------
    dict
        ``{ibsi_id: value}`` for :data:`INTENSITY_FEATURES`.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_medprep.radiomics._ibsi_intensity import intensity_features
    >>> values = np.array([[[1.0, 2.0, 2.0, 3.0]]])
    >>> features = intensity_features(values, values > 0, (1.0, 1.0, 1.0))
    >>> features["stat_medad"], features["ivh_i10"]
    (0.5, 4.0)
    """
    mask = np.asarray(mask, bool)
    values = np.asarray(intensities, float)[mask]
    local = local_means(intensities, mask, spacing)
    out = {
        "loc_peak_loc": float(local[values == values.max()].max()),
        "loc_peak_glob": float(local.max()),
        "stat_medad": float(np.mean(np.abs(values - np.median(values)))),
    }
    mean = values.mean()
    out["stat_cov"] = float(values.std() / mean) if mean != 0 else math.nan
    q1, q3 = np.percentile(values, [25, 75])
    out["stat_qcod"] = float((q3 - q1) / (q3 + q1)) if q3 + q1 != 0 else math.nan
    out.update(_ivh(values, float(ivh_bin_width)))
    return {name: float(out[name]) for name in INTENSITY_FEATURES}


def histogram_features(grey, mask, spacing):
    """Intensity-histogram features on discretised grey levels (IBSI 3.4).

    Parameters
    ----------
    grey : ndarray of shape (z, y, x)
        Discretised grey levels, integers ``>= 1`` inside the ROI.
    mask : ndarray of bool, same shape
        The ROI.
    spacing : sequence of 3 float
        Voxel spacing (unused: the histogram has no geometry; the same
        signature as the other feature families).

    Returns
    -------
    dict
        ``{ibsi_id: value}`` for :data:`HISTOGRAM_FEATURES`. The histogram runs
        over the levels ``1..max``, empty ones included (its gradient is
        IBSI's: central differences inside, one-sided at both ends).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_medprep.radiomics._ibsi_intensity import histogram_features
    >>> grey = np.array([[[1, 1, 1, 3, 4]]])
    >>> features = histogram_features(grey, grey > 0, (1.0, 1.0, 1.0))
    >>> features["ih_mode"], features["ih_min_grad"], features["ih_min_grad_g"]
    (1.0, -3.0, 1.0)
    """
    mask = np.asarray(mask, bool)
    g = np.asarray(grey, float)[mask]
    if np.any(g < 1) or np.any(g != np.round(g)):
        raise ValueError("grey levels inside the ROI must be integers >= 1")
    counts = np.bincount(g.astype(np.int64))[1:].astype(float)
    levels = np.arange(1, counts.size + 1, dtype=float)
    p = counts / g.size
    mu = float(np.sum(levels * p))
    sigma = math.sqrt(float(np.sum((levels - mu) ** 2 * p)))
    p10, q1, median, q3, p90 = np.percentile(g, [10, 25, 50, 75, 90])
    modes = levels[counts == counts.max()]
    central = g[(g >= p10) & (g <= p90)]
    gradient = np.gradient(counts) if counts.size > 1 else np.zeros(1)
    out = {
        "ih_mean": mu,
        "ih_var": sigma**2,
        "ih_skew": float(np.sum((levels - mu) ** 3 * p)) / sigma**3 if sigma else 0.0,
        "ih_kurt": float(np.sum((levels - mu) ** 4 * p)) / sigma**4 - 3.0
        if sigma else 0.0,
        "ih_median": median,
        "ih_min": g.min(),
        "ih_p10": p10,
        "ih_p90": p90,
        "ih_max": g.max(),
        "ih_mode": modes[np.argmin(np.abs(modes - mu))],
        "ih_iqr": q3 - q1,
        "ih_range": g.max() - g.min(),
        "ih_mad": np.mean(np.abs(g - mu)),
        "ih_rmad": np.mean(np.abs(central - central.mean())),
        "ih_medad": np.mean(np.abs(g - median)),
        "ih_cov": sigma / mu,
        "ih_qcod": (q3 - q1) / (q3 + q1),
        "ih_max_grad": gradient.max(),
        "ih_max_grad_g": levels[int(np.argmax(gradient))],
        "ih_min_grad": gradient.min(),
        "ih_min_grad_g": levels[int(np.argmin(gradient))],
    }
    return {name: float(out[name]) for name in HISTOGRAM_FEATURES}
