"""Quality control of voxel-wise harmonization: site F-maps before and after."""

import shutil
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from joblib import Parallel, delayed
from sklearn.utils import Bunch

from ..harmonization import _voxel_store as vs
from ..harmonization._voxel_chunks import write_image
from ..io._targets import refuse_inputs
from ..io._write import commit_all
from ..table._checks import align_rows, check_subject_table
from ..utils._optional import import_optional
from ..utils._paths import absolute_cells, on_worker
from ._site_effects import _anova, _covariate_design, _residualize

__all__ = ["plot_voxel_site_effects", "voxel_site_effect_maps"]


def _chunk_fmap(store, k, sites, design, complete):
    values = store.read_chunk(k)
    if design is not None:
        values = _residualize(values, design, complete)
    f, _, _ = _anova(values, sites)
    return f


def _fmap(table, image, sites, design, complete, grid, flat_index, n_jobs, scratch):
    n, p = table.shape[0], flat_index.size
    store = vs.VoxelStore(scratch, n, p, max(1, vs.CHUNK_BYTES // (8 * n)), "float64")
    cells = absolute_cells(table[image])  # workers' cwd differ
    rows = table.index.tolist()
    parallel = Parallel(n_jobs=n_jobs)
    on_scratch = {"scratch folder": str(scratch)}  # checked on each worker
    parallel(
        delayed(on_worker)(
            vs.fill_rows, on_scratch, store, b.start, [cells[i] for i in b],
            [rows[i] for i in b], image, grid, flat_index,
        )
        for b in vs.voxel_batches(n, p)
    )
    parts = parallel(
        delayed(on_worker)(_chunk_fmap, on_scratch, store, k, sites, design, complete)
        for k in range(store.n_chunks)
    )
    store.remove()
    return np.concatenate(parts)


def _as_image(values, flat_index, mask):
    array = np.zeros(sitk.GetArrayViewFromImage(mask).shape, dtype=np.float32)
    array.reshape(-1)[flat_index] = values
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(mask)
    return image


def voxel_site_effect_maps(
    before,
    after=None,
    *,
    mask,
    image="image",
    site="site",
    covariates=None,
    output_dir=None,
    n_jobs=None,
):
    """Voxel-wise F-maps of site (one-way ANOVA per voxel), before and after.

    The images are read chunk by chunk of voxels (bounded memory), as
    :class:`~sklearn_medprep.VoxelComBatHarmonizer` reads them. With
    ``covariates``, each voxel is first replaced by its residuals on an
    intercept and the covariates (as :func:`~sklearn_medprep.site_effect_report`
    does), so that a covariate that differs between sites (age) does not count
    as a site effect.

    Parameters
    ----------
    before : pandas.DataFrame
        Subject table with the image, site and covariate columns.
    after : pandas.DataFrame or None, default=None
        The same rows after harmonization (same index labels, any order); its
        site and covariates are taken from ``before``.
    mask : str, pathlib.Path or SimpleITK.Image
        Voxels to test (e.g. the fitted ``mask_``); the images lie on its grid.
    image : str, default="image"
        Image column.
    site : str, default="site"
        Site column of ``before``.
    covariates : list of str or None, default=None
        Columns of ``before`` regressed out first.
    output_dir : str, pathlib.Path or None, default=None
        Write ``site_fmap_before.nii.gz`` (and ``site_fmap_after.nii.gz``) there.
    n_jobs : int or None, default=None
        joblib workers over chunks of voxels.

    Returns
    -------
    maps : sklearn.utils.Bunch
        ``before`` and ``after`` (SimpleITK float32 images, 0 outside the mask;
        ``after`` None without ``after``), ``f_before`` and ``f_after`` (F per
        masked voxel), ``files`` (paths written).
    """
    before = check_subject_table(before, columns=[image, site])
    mask = vs.load_on_grid(mask, None, row=None, column="mask")
    grid = vs.grid_of(mask)
    flat_index = np.flatnonzero(sitk.GetArrayViewFromImage(mask).reshape(-1))
    sites = before[site].to_numpy()
    design = complete = None
    if covariates:
        design, complete = _covariate_design(before, covariates)
    tables = {"before": before}
    if after is not None:
        after = check_subject_table(after, columns=[image])
        after = align_rows(after, before.index, what="after", reference="before")
        tables["after"] = after
    scratch = Path(tempfile.mkdtemp(prefix="medprep-fmap-"))
    result = Bunch(before=None, after=None, f_before=None, f_after=None, files=[])
    try:
        for name, table in tables.items():
            f = _fmap(
                table, image, sites, design, complete, grid, flat_index, n_jobs,
                scratch,
            )
            result[f"f_{name}"] = f
            result[name] = _as_image(f, flat_index, mask)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if output_dir is not None:
        # each map whole under its name or none (issue 21): staged, read
        # back, then both renamed; never over an input image
        folder = Path(output_dir)
        files = [str(folder / f"site_fmap_{name}.nii.gz") for name in tables]
        refuse_inputs(files, [c for t in tables.values() for c in t[image]])
        staged = []
        try:
            for name, file in zip(tables, files):
                staged.append(write_image(result[name], file, row=None))
            result.files.extend(commit_all(staged))
        except BaseException:
            for item in staged:
                item.discard()
            raise
    return result


def plot_voxel_site_effects(maps, *, n_slices=3, file=None, figsize=None):
    """Plot axial slices of the site F-maps before and after, on one colour scale.

    Parameters
    ----------
    maps : sklearn.utils.Bunch
        The output of :func:`voxel_site_effect_maps`.
    n_slices : int, default=3
        Axial slices shown, evenly spaced through the mask.
    file : str, pathlib.Path or None, default=None
        Save the figure there.
    figsize : tuple or None, default=None
        Figure size.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    plt = import_optional("matplotlib.pyplot", "plot_voxel_site_effects")

    rows = [name for name in ("before", "after") if maps[name] is not None]
    arrays = {name: sitk.GetArrayFromImage(maps[name]) for name in rows}
    depth = arrays["before"].shape[0]
    picks = np.linspace(0, depth - 1, n_slices + 2)[1:-1].round().astype(int)
    vmax = float(np.nanpercentile(arrays["before"][arrays["before"] > 0], 99))
    fig, axes = plt.subplots(
        len(rows),
        n_slices,
        figsize=figsize or (3 * n_slices, 3 * len(rows)),
        squeeze=False,
    )
    for r, name in enumerate(rows):
        for c, z in enumerate(picks):
            shown = axes[r, c].imshow(arrays[name][z], vmin=0, vmax=vmax, cmap="hot")
            axes[r, c].set_title(f"site F, {name}, slice {int(z)}", fontsize=8)
            axes[r, c].axis("off")
    fig.colorbar(shown, ax=axes.ravel().tolist(), shrink=0.8, label="F")
    if file is not None:
        fig.savefig(file, dpi=100)
    return fig
