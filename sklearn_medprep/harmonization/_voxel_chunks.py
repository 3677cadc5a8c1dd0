"""The per-chunk work of :class:`~sklearn_medprep.VoxelComBatHarmonizer`.

Picklable pieces for joblib processes and dask workers: ComBat's
site-effects step on one chunk of voxels (:func:`chunk_site_effects`,
``fit``) and the harmonization of one batch of images
(:func:`harmonize_rows`, ``transform``). :func:`fit_chunk` and
:func:`eb_adjust` are the 0.1.0 per-chunk fit and empirical-Bayes step, kept
for their callers; the estimator now runs ComBat's own fit steps
(:class:`~._steps.ComBatFitSteps`).
"""

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import SimpleITK as sitk

from ..exceptions import OutputWriteError, SubjectTableError
from ..io._read import describe_cell
from ..io._save import stage_image
from ..io._targets import output_names, refuse_inputs
from . import _core as core
from . import _voxel_store as vs
from ._apply import apply_combat
from ._eb import EBInput, EBOptions, SiteAdjustments, adjustments

__all__ = [
    "ImageLayout",
    "VoxelModel",
    "chunk_site_effects",
    "eb_adjust",
    "fit_chunk",
    "harmonize_rows",
    "output_files",
    "write_image",
]


def chunk_site_effects(step, store, k, batch, coding, smooth=None):
    """ComBat's site-effects ``step`` on chunk ``k`` of a voxel store.

    The chunk is read once (in the worker) and released on return, so that
    only the chunks being estimated are in memory. With ComBat-GAM smooth
    terms, ``smooth`` fits the chunk's GAM coefficients first.

    Parameters
    ----------
    step : callable
        The estimator's ``_estimate_site_effects(batch, coding, coef)``.
    store : VoxelStore
        The masked training voxels.
    k : int
        The chunk.
    batch : Batch
        The training rows' batch (its ``design_cov``; no table needed).
    coding : SiteCoding
        The training sites.
    smooth : callable or None, default=None
        ``smooth(chunk, coding)`` returning the chunk with its design and the
        GAM coefficients of its voxels (:func:`~._voxel_fit.fit_chunk_smooth`),
        or None (no smooth term: the step regresses).

    Returns
    -------
    SiteStatistics
        Of the chunk's voxels.
    """
    block = store.read_chunk(k)
    chunk = batch.replace(
        feats=range(*store.chunk(k)), get=lambda a, b: block[:, a:b]
    )
    coef = None
    if smooth is not None:
        chunk, coef = smooth(chunk, coding)
    return step(chunk, coding, coef)


@dataclass(frozen=True, eq=False)
class ImageLayout:
    """Where the harmonized voxels go in the output images.

    Attributes
    ----------
    column : str
        The image column (for messages).
    grid : Grid
        The mask's grid.
    flat_index : ndarray of int
        The mask's voxels in the flattened (C order) array.
    fill : float or None
        Value of the voxels outside the mask (None keeps the input's).
    dtype : numpy.dtype
        Pixel type of the output.
    """

    column: str
    grid: tuple
    flat_index: np.ndarray
    fill: float
    dtype: np.dtype


class VoxelModel(NamedTuple):
    """The fitted voxel-wise maps: ``params`` of ``apply_combat``, ``ref_level``."""

    params: dict
    ref_level: int = None


def eb_adjust(
    gamma_hat, delta_hat, counts, ok, *, ref_level, eb, parametric, mean_only,
    degenerate=None,
):
    """Empirical-Bayes step of :func:`~._core.fit_combat` on summaries.

    ``fit_combat`` with ``eb=False`` on separate chunks of features gives the
    per-feature estimates; the priors look across all features, so the
    shrinkage runs once on the gathered ``(n_sites, n_features)`` arrays, with
    the core's own :func:`~._core._adjustments`. The per-site mean of the
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
    gamma_star, delta_star, priors = adjustments(
        EBInput(
            gamma_hat,
            delta_hat,
            site_mean,
            delta_hat,
            counts,
            ok,
            skip=ref_level,
            cell_ok=None if degenerate is None else ~degenerate,
        ),
        EBOptions(eb=eb, parametric=parametric, mean_only=mean_only),
    )
    if degenerate is not None:
        gamma_star[degenerate] = gamma_hat[degenerate]
        delta_star[degenerate] = 1.0
    if ref_level is not None:
        gamma_star[ref_level] = 0.0
        delta_star[ref_level] = 1.0
    gamma_star[:, ~ok] = 0.0
    delta_star[:, ~ok] = 1.0
    return SiteAdjustments(gamma_star, delta_star, priors)


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


def harmonize_rows(
    cells, labels, sites, design_cov, model, layout, files=None, tag=""
):
    """Load, harmonize and rebuild (or write) a batch of images.

    Parameters
    ----------
    cells, labels : list
        The image cells of the batch and their row labels.
    sites : BatchSites
        Sites of the batch's rows.
    design_cov : ndarray of shape (n_rows, n_design)
        Their covariate design.
    model : VoxelModel
        The fitted maps.
    layout : ImageLayout
        Mask, grid and output pixel type.
    files : list of str or None, default=None
        Files to write, or None (images returned). Each is written under a
        temporary name and checked (:func:`~sklearn_medprep.io.stage_file`);
        the caller renames them all once every batch succeeded.
    tag : str, default=""
        This call's mark in the temporary names (to clean up after a failure).

    Returns
    -------
    list of SimpleITK.Image or StagedFile
    """
    grid, flat_index = layout.grid, layout.flat_index
    images = [
        vs.load_on_grid(c, grid, row=r, column=layout.column)
        for c, r in zip(cells, labels)
    ]
    values = np.empty((len(images), flat_index.size))
    for i, (image, cell, row) in enumerate(zip(images, cells, labels)):
        values[i] = vs.masked_voxels(
            image, flat_index, row=row, column=layout.column, file=describe_cell(cell)
        )
    out = np.empty_like(values)
    apply_combat(
        lambda a, b: values[:, a:b],
        out,
        sites,
        design_cov,
        model.params,
        ref_level=model.ref_level,
    )
    result = []
    for i, image in enumerate(images):
        array = sitk.GetArrayFromImage(image).astype(layout.dtype)
        flat = array.reshape(-1)
        if layout.fill is not None:
            flat[:] = layout.fill
        flat[flat_index] = out[i]
        harmonized = sitk.GetImageFromArray(array)
        harmonized.CopyInformation(image)
        if files is None:
            result.append(harmonized)
        else:
            result.append(write_image(harmonized, files[i], row=labels[i], tag=tag))
    return result


def write_image(image, path, *, row, tag=""):
    """Stage ``image`` as ``path``: written, read back and checked, not yet renamed.

    :func:`sklearn_medprep.io._save.stage_image`, the library's one checked
    image write.
    """
    return stage_image(image, path, row=row, tag=tag)


def output_files(output_dir, index, cells, suffix):
    """Paths of the images ``transform`` writes, refused before any work if unsafe.

    Labels must be unique, also after sanitising (:func:`~sklearn_medprep.io.
    output_names`); no output may be an input image; the folder must take a
    file (probed now, not after the model was applied to every image).
    """
    if not index.is_unique:
        raise SubjectTableError(
            "output_dir names the harmonized images after the row labels, "
            f"which must be unique (label {index[index.duplicated()][0]!r} "
            "repeats)"
        )
    folder = Path(output_dir)
    files = [str(folder / name) for name in output_names(index, suffix)]
    refuse_inputs(files, cells, rows=list(index))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".medprep-probe-")
        os.close(handle)
        os.remove(probe)
    except OSError as exc:
        raise OutputWriteError(
            f"output_dir cannot be written to ({exc}); pass a writable folder",
            file=str(folder),
            errno=exc.errno,
        ) from exc
    return files
