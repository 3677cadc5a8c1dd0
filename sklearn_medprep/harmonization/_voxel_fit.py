"""The chunked ``fit`` of :class:`~sklearn_medprep.VoxelComBatHarmonizer`.

The brain mask learned from the training images (:func:`learn_mask`), the
masked voxels copied once into a chunk-major scratch file and ComBat's
site-effects step run on each chunk (:func:`chunked_site_effects`). With
ComBat-GAM smooth terms each chunk also fits its voxels' GAM coefficients
through the design step of :class:`~._steps.ComBatFitSteps` (the very code of
:class:`~sklearn_medprep.ComBatHarmonizer`), with the random generator at the
state the table estimator's would have at the chunk's first voxel
(:func:`chunk_generators`): the fit is that of ``ComBatHarmonizer`` on the
flattened voxels, whatever the chunk size and ``n_jobs``.
"""

import copy
import functools
import shutil
from typing import NamedTuple

import numpy as np
import SimpleITK as sitk
from joblib import Parallel, delayed
from sklearn.utils import check_random_state

from ..utils._paths import absolute_cells, absolute_folder, on_worker
from . import _core as core
from . import _input as inputs
from . import _voxel_store as vs
from ._voxel_chunks import chunk_site_effects

__all__ = [
    "Mask",
    "chunk_generators",
    "chunked_site_effects",
    "fit_chunk_smooth",
    "learn_mask",
]

# statsmodels' ``GLMGam.select_penweight_kfold`` defaults, which
# :func:`~._gam.fit_gam_coef` uses: 5 shuffled folds, drawn anew for each of
# the 11 penalty weights of each smooth term's grid (11 ** n_smooth points)
_K_FOLDS = 5
_K_GRID = 11


class Mask(NamedTuple):
    """The mask of :func:`learn_mask`.

    ``array`` (bool, C order of the SimpleITK array), its ``grid`` and the
    ``template`` image whose geometry the mask image copies.
    """

    array: np.ndarray
    grid: tuple
    template: object


def learn_mask(est, table):
    """Mask array (bool, C order of the SimpleITK array) and its grid.

    ``est.mask`` when given, else the voxels whose mean over the rows of
    ``table`` is positive and at least ``est.mask_threshold``.
    """
    cells = absolute_cells(table[est.image])  # workers' cwd differ
    labels = table.index.tolist()
    if est.mask is not None:
        mask = vs.load_on_grid(est.mask, None, row=None, column="mask")
        array = sitk.GetArrayFromImage(mask) != 0
        return Mask(array, vs.grid_of(mask), mask)
    first = vs.load_on_grid(cells[0], None, row=labels[0], column=est.image)
    grid = vs.grid_of(first)
    n_grid = int(np.prod(grid[0]))
    parts = Parallel(n_jobs=est.n_jobs, return_as="generator")(
        delayed(vs.sum_images)(
            [cells[i] for i in b], [labels[i] for i in b], est.image, grid
        )
        for b in vs.voxel_batches(len(cells), n_grid)
    )
    total = next(parts)
    for part in parts:  # one partial sum in memory at a time, in row order
        total += part
    mean = total / len(cells)
    array = (mean >= est.mask_threshold) & (mean > 0)
    return Mask(array, grid, first)


def chunk_generators(random_state, store, n_smooth):
    """The penalty-choice generator of each chunk's first voxel.

    :func:`~._gam.fit_gam_coef` draws the folds of every feature, one after
    the other, from one generator (``numpy.random.default_rng(seed)`` for an
    int seed, the instance itself for a ``RandomState``): feature ``j``'s
    folds depend on the draws of the features before it. Each chunk gets a
    copy of the generator advanced past the draws of the voxels before it
    (replayed with statsmodels' own ``KFold``: one shuffle of a voxel's
    finite rows per point of the penalty grid), so that chunks fitted apart,
    in any order, draw what the table estimator draws. ``None`` (fresh
    entropy, as the table estimator) gives ``None`` to every chunk.

    Parameters
    ----------
    random_state : None, int or RandomState
        The estimator's ``random_state``.
    store : VoxelStore
        The masked training voxels (read chunk by chunk to count the finite
        rows of each voxel).
    n_smooth : int
        Smooth terms of the design.

    Returns
    -------
    list
        One generator (or None) per chunk.
    """
    if random_state is None:
        return [None] * store.n_chunks
    from statsmodels.gam.gam_cross_validation.cross_validators import KFold

    if isinstance(random_state, (int, np.integer)):
        rng = np.random.default_rng(random_state)
    else:  # a RandomState, copied: the caller's is left as it was
        rng = copy.deepcopy(check_random_state(random_state))
    folds = KFold(k_folds=_K_FOLDS, shuffle=True, rng=rng)  # draws from rng
    draws = _K_GRID**n_smooth
    out = []
    for k in range(store.n_chunks):
        out.append(copy.deepcopy(rng))
        if k == store.n_chunks - 1:
            break
        for n_rows in np.isfinite(store.read_chunk(k)).sum(axis=0):
            rows = np.empty((int(n_rows), 0))
            for _ in range(draws):
                next(folds.split(rows))
    return out


def fit_chunk_smooth(owner, rng, chunk, coding):
    """ComBat's design step on one chunk of voxels: its GAM coefficients.

    Runs ``owner._build_design`` (the step of
    :class:`~sklearn_medprep.ComBatHarmonizer`) on a copy of the estimator
    whose ``random_state`` is the chunk's generator, so the estimator itself
    is left untouched (with ``n_jobs=None`` the chunks run in its process).

    Returns
    -------
    chunk : Batch
        With its ``design_cov``.
    coef : ndarray of shape (n_sites + n_design, n_chunk_voxels)
    """
    est = copy.copy(owner)
    est.random_state = rng
    return est._build_design(chunk, coding)


def chunked_site_effects(est, batch, coding, grid, flat_index):
    """ComBat's site-effects step on chunks of voxels, gathered.

    The masked voxels are copied once into a chunk-major scratch file;
    ``est._estimate_site_effects`` runs on each chunk (in parallel), after
    the chunk's GAM fit when the design has smooth terms; every statistic is
    per voxel, so the chunks' side by side are those of the whole mask
    (:meth:`~._core.SiteStatistics.concat`).
    """
    table = batch.table
    parallel = Parallel(n_jobs=est.n_jobs)
    n, p = table.shape[0], flat_index.size
    width = est.chunk_size or max(1, vs.CHUNK_BYTES // (8 * n))
    cells = absolute_cells(table[est.image])  # workers' cwd differ
    rows = table.index.tolist()
    scratch = vs.scratch_folder(absolute_folder(est.scratch_dir))
    on_scratch = {"scratch_dir": str(scratch)}  # checked on each worker
    n_smooth = len(est.spline_knots_)
    try:
        first = vs.store_dtype(cells[0], row=rows[0], column=est.image)
        for dtype in (first, "float64")[: 2 if first == "float32" else 1]:
            store = vs.VoxelStore(scratch, n, p, width, dtype)
            exact = parallel(
                delayed(on_worker)(
                    vs.fill_rows,
                    on_scratch,
                    store,
                    b.start,
                    [cells[i] for i in b],
                    [rows[i] for i in b],
                    est.image,
                    grid,
                    flat_index,
                )
                for b in vs.voxel_batches(n, p)
            )
            if all(exact):
                break
            store.remove()
        # what a chunk's steps read: the design and its voxels (the index,
        # covariates and target too for a GAM fit), not the images
        if n_smooth:
            rngs = chunk_generators(est.random_state, store, n_smooth)
            rows_only = batch.replace(table=table.iloc[:, :0], feats=None, get=None)
            smooth = [functools.partial(fit_chunk_smooth, est, rng) for rng in rngs]
        else:
            rows_only = inputs.Batch(
                None, None, None, None, None, [], None, design_cov=batch.design_cov
            )
            smooth = [None] * store.n_chunks
        parts = parallel(
            delayed(on_worker)(
                chunk_site_effects,
                on_scratch,
                est._estimate_site_effects,
                store,
                k,
                rows_only,
                coding,
                smooth[k],
            )
            for k in range(store.n_chunks)
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return core.SiteStatistics.concat(parts)
