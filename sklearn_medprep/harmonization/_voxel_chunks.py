"""The per-chunk work of :class:`~sklearn_medprep.VoxelComBatHarmonizer`.

Module-level functions (picklable for joblib processes and dask workers) that
call the ComBat core of :mod:`sklearn_medprep.harmonization._core` on one chunk of
voxels (``fit``) or one batch of images (``transform``), and the
empirical-Bayes step on the gathered per-site estimates.
"""

import numpy as np
import SimpleITK as sitk

from . import _core as core
from . import _voxel_store as vs
from ._apply import apply_combat

__all__ = ["eb_adjust", "fit_chunk", "harmonize_rows"]


def eb_adjust(
    gamma_hat, delta_hat, counts, ok, *, ref_level, eb, parametric, mean_only,
    degenerate=None,
):
    """Empirical-Bayes step of :func:`~._combat_core.fit_combat` on summaries.

    ``fit_combat`` with ``eb=False`` on separate chunks of features gives the
    per-feature estimates; the priors look across all features, so the
    shrinkage runs once on the gathered ``(n_sites, n_features)`` arrays, with
    the core's own :func:`~._combat_core._adjustments`. The per-site mean of the
    standardized data is ``gamma_hat`` (the reference site's added back) and its
    variance ``delta_hat`` (with ``mean_only`` the variance cancels from every
    formula, so ``delta_hat = 1`` serves). ``degenerate`` site/voxel pairs
    (no spread within the site) keep their location estimate and
    ``delta* = 1``, as in ``fit_combat``.

    Returns
    -------
    gamma_star, delta_star : ndarray of shape (n_sites, n_features)
    priors : dict
    """
    site_mean = gamma_hat.copy()
    if ref_level is not None:
        others = np.arange(gamma_hat.shape[0]) != ref_level
        site_mean[others] += gamma_hat[ref_level]
    gamma_star, delta_star, priors = core._adjustments(
        gamma_hat,
        delta_hat,
        site_mean,
        delta_hat,
        counts,
        ok,
        eb=eb,
        parametric=parametric,
        mean_only=mean_only,
        skip=ref_level,
        cell_ok=None if degenerate is None else ~degenerate,
    )
    if degenerate is not None:
        gamma_star[degenerate] = gamma_hat[degenerate]
        delta_star[degenerate] = 1.0
    if ref_level is not None:
        gamma_star[ref_level] = 0.0
        delta_star[ref_level] = 1.0
    gamma_star[:, ~ok] = 0.0
    delta_star[:, ~ok] = 1.0
    return gamma_star, delta_star, priors


def fit_chunk(store, k, codes, n_sites, design_cov, ref_level, mean_only):
    """Per-voxel ComBat estimates of chunk ``k`` (the core's ``fit_combat``)."""
    block = store.read_chunk(k)
    params = core.fit_combat(
        lambda a, b: block[:, a:b],
        block.shape[1],
        codes,
        n_sites,
        design_cov,
        ref_level=ref_level,
        eb=False,
        mean_only=mean_only,
    )
    sizes = np.bincount(codes, minlength=n_sites).astype(float)
    onehot = np.zeros((codes.size, n_sites))
    onehot[np.arange(codes.size), codes] = 1.0
    counts = sizes[:, None] - onehot.T @ np.isnan(block)
    keys = (
        "coef", "grand_mean", "var_pooled", "gamma_hat", "delta_hat", "ok",
        "degenerate",
    )
    return {key: params[key] for key in keys}, counts


def harmonize_rows(cells, labels, column, grid, flat_index, sites, design_cov,
                    params, ref_level, fill, dtype, files):
    """Load, harmonize and rebuild (or write) a batch of images."""
    images = [
        vs.load_on_grid(c, grid, row=r, column=column) for c, r in zip(cells, labels)
    ]
    values = np.empty((len(images), flat_index.size))
    for i, image in enumerate(images):
        values[i] = vs.masked_voxels(image, flat_index)
    out = np.empty_like(values)
    apply_combat(
        lambda a, b: values[:, a:b],
        out,
        sites,
        design_cov,
        params,
        ref_level=ref_level,
    )
    result = []
    for i, image in enumerate(images):
        array = sitk.GetArrayFromImage(image).astype(dtype)
        flat = array.reshape(-1)
        if fill is not None:
            flat[:] = fill
        flat[flat_index] = out[i]
        harmonized = sitk.GetImageFromArray(array)
        harmonized.CopyInformation(image)
        if files is None:
            result.append(harmonized)
        else:
            sitk.WriteImage(harmonized, files[i])
            result.append(files[i])
    return result
