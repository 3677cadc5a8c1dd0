"""Visual QC figures of a subject table: images with their masks, before/after, draws.

Looking at the images is the practitioner's first and last check: are the
labels on the lesion, did the crop keep it, does the normalisation look the
same at every site, are the augmentations plausible? Three figures answer
these, readable for 4 to 40 subjects:

* :func:`plot_subjects`: N subjects, each with its mask drawn over it;
* :func:`plot_preprocessing`: the same subjects before and after a fitted
  :class:`~sklearn_medprep.TorchIOPreprocessor`;
* :func:`plot_augmentations`: several draws of a
  :class:`~sklearn_medprep.TorchIOAugmenter` beside each original,
  reproducible with ``random_state``.

Each subject is a block of panels titled with its index label and site; the
grey levels of every panel of a figure share one intensity window (or one per
subject on request), and the suptitle says which.
"""

import textwrap
from numbers import Integral, Real

from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from ..exceptions import SubjectTableError
from ..table._checks import check_subject_table
from ..utils._optional import import_optional
from ._visual import (
    VIEWS,
    digest,
    draw_panel,
    fill_common_doc,
    intensity_window,
    label_colour,
    layout,
    read_volume,
    save_figure,
)

__all__ = ["plot_augmentations", "plot_preprocessing", "plot_subjects"]

_THROUGH = {
    "mask": "through the mask's centre of mass",
    "image": "through the image centre",
}


def _check_options(function, view, n_slices, through, window, percentiles, overlay,
                   max_subjects):
    import_optional("matplotlib.pyplot", function)  # before reading any image
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    if not isinstance(n_slices, Integral) or n_slices < 1:
        raise ValueError(f"n_slices must be a positive integer, got {n_slices!r}")
    if through not in _THROUGH and not (
        isinstance(through, Integral) and not isinstance(through, bool) and through > 0
    ):
        raise ValueError(
            f"through must be 'mask', 'image' or a mask label (> 0), got {through!r}"
        )
    if isinstance(window, str):
        if window not in ("shared", "subject"):
            raise ValueError(
                "window must be 'shared', 'subject' or (vmin, vmax), got "
                f"{window!r}"
            )
    elif not (
        isinstance(window, (tuple, list))
        and len(window) == 2
        and all(isinstance(v, Real) for v in window)
        and window[0] < window[1]
    ):
        raise ValueError(
            "window must be 'shared', 'subject' or (vmin, vmax) with vmin < vmax, "
            f"got {window!r}"
        )
    if not (
        isinstance(percentiles, (tuple, list))
        and len(percentiles) == 2
        and 0 <= percentiles[0] < percentiles[1] <= 100
    ):
        raise ValueError(
            f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles!r}"
        )
    if overlay not in ("contour", "fill", None):
        raise ValueError(
            f"overlay must be 'contour', 'fill' or None, got {overlay!r}"
        )
    if not isinstance(max_subjects, Integral) or max_subjects < 1:
        raise ValueError(
            f"max_subjects must be a positive integer, got {max_subjects!r}"
        )


def _shown_rows(table, subjects, max_subjects, function):
    """The rows to show: all, the first ``subjects``, or those labels."""
    if subjects is None:
        shown = table
    elif isinstance(subjects, Integral):
        if subjects < 1:
            raise ValueError(f"subjects must be positive, got {subjects}")
        shown = table.iloc[: int(subjects)]
    else:
        labels = list(subjects)
        missing = [label for label in labels if label not in table.index]
        if missing:
            raise SubjectTableError(
                f"subjects not in the table's index: {missing[:10]}"
            )
        shown = table.loc[labels]
    n = shown.shape[0]
    if n == 0:
        raise SubjectTableError("no subject to show: the table has no row")
    if n > max_subjects:
        raise ValueError(
            f"{n} subjects to show, but one figure shows at most max_subjects="
            f"{max_subjects} readably. Show them page by page, e.g. "
            f"`for start in range(0, {n}, {max_subjects}): "
            f"{function}(..., subjects=table.index[start:start + {max_subjects}])`"
            ", or raise max_subjects."
        )
    return shown


def _site_values(shown, site):
    if site is None:
        return [None] * shown.shape[0]
    return shown[site].tolist()


def _percent(value):
    return f"{value:g}"


def _windows(blocks, groups, window, percentiles):
    """The ``(vmin, vmax)`` of every (block, stage), and the sentence saying so."""
    stages = range(len(groups))
    names = sorted(set(groups), key=groups.index)
    if not isinstance(window, str):
        fixed = (float(window[0]), float(window[1]))
        return [[fixed for _ in stages] for _ in blocks], (
            f"grey window fixed at [{fixed[0]:.4g}, {fixed[1]:.4g}]"
        )
    low, high = (_percent(p) for p in percentiles)
    span = f"percentiles {low} to {high}"
    if window == "shared":
        per_group = {
            g: intensity_window(
                [b["stages"][s]["sample"] for b in blocks for s in stages
                 if groups[s] == g],
                percentiles,
            )
            for g in names
        }
        values = "; ".join(
            (f"{g} " if g else "") + f"[{w[0]:.4g}, {w[1]:.4g}]"
            for g, w in per_group.items()
        )
        what = " (one per stage)" if len(names) > 1 else ""
        sentence = (
            f"grey window shared by all {len(blocks)} subjects{what}: {span} of "
            f"their voxels, {values}"
        )
        return [[per_group[groups[s]] for s in stages] for _ in blocks], sentence
    result = []
    for b in blocks:
        per_group = {
            g: intensity_window(
                [b["stages"][s]["sample"] for s in stages if groups[s] == g],
                percentiles,
            )
            for g in names
        }
        result.append([per_group[groups[s]] for s in stages])
    what = " (and stage)" if len(names) > 1 else ""
    return result, f"grey window per subject{what}: {span} of its own voxels"


def _figure(blocks, *, stage_names, groups, window, percentiles, overlay, n_cols,
            figsize, heading, file, inputs):
    """Draw the blocks (one per subject) on a grid; return the figure."""
    plt = import_optional("matplotlib.pyplot", "visual QC figures")
    lines = import_optional("matplotlib.lines", "visual QC figures")

    windows, sentence = _windows(blocks, groups, window, percentiles)
    for b in blocks:
        b["panels"] = [stage["panels"] for stage in b["stages"]]
    width = max(sum(len(p) for p in b["panels"]) for b in blocks)
    per_row, n_rows = layout(len(blocks), width, n_cols)
    n_axes_cols = per_row * width
    inch = 1.9 if n_axes_cols <= 6 else 1.6
    if figsize is None:
        figsize = (max(5.0, n_axes_cols * inch), n_rows * (inch + 0.4) + 0.9)
    fig, axes = plt.subplots(n_rows, n_axes_cols, figsize=figsize, squeeze=False,
                             layout="constrained")
    for ax in axes.ravel():
        ax.set_visible(False)
    drawn = set()
    for i, b in enumerate(blocks):
        r, c0 = divmod(i, per_row)
        c = c0 * width
        who = str(b["row"]) if b["site"] is None else f"{b['row']} | {b['site']}"
        for s, panels in enumerate(b["panels"]):
            for panel in panels:
                ax = axes[r, c]
                ax.set_visible(True)
                stage = stage_names[s]
                name = f"{stage} {panel['name']}" if stage else panel["name"]
                drawn |= draw_panel(ax, panel, windows[i][s], overlay=overlay,
                                    title=f"{who}\n{name}")
                c += 1
    # about 13 characters of 9-point text per inch; the legend takes the right
    chars = max(60, int(13 * figsize[0]) - (25 if drawn else 0))
    text = "\n".join(textwrap.wrap(heading, chars) + textwrap.wrap(sentence, chars))
    fig.suptitle(text, fontsize=9)
    if drawn:
        handles = [
            lines.Line2D([], [], color=label_colour(v), lw=2, label=f"mask label {v}")
            for v in sorted(drawn)
        ]
        fig.legend(handles=handles, loc="outside upper right", fontsize=7,
                   frameon=False)
    if file is not None:
        save_figure(fig, file, inputs)
    return fig


def _reader(image, mask, view, n_slices, through):
    """``read(cell, mask_cell, row)``: one image read, sliced and let go."""

    def read(cell, mask_cell, row):
        volume = read_volume(cell, mask_cell, row=row, image=image, mask=mask)
        return digest(volume, view, n_slices=n_slices, through=through)

    return read


def _inputs(*columns):
    return [c for column in columns for c in column if isinstance(c, str)]


def _through_words(through):
    if through in _THROUGH:
        return _THROUGH[through]
    return f"through the centre of mass of mask label {through}"


def _view_words(view, n_slices, through, blocks):
    if all(stage["is_2d"] for b in blocks for stage in b["stages"]):
        return "2D images"
    if view == "montage":
        return f"montage of {n_slices} axial slices through the mask's extent"
    if view == "orthogonal":
        return f"axial, coronal and sagittal slices {_through_words(through)}"
    return f"{view} slice {_through_words(through)}"


@fill_common_doc
def plot_subjects(
    table,
    *,
    image="image",
    mask="mask",
    site="site",
    subjects=None,
    view="orthogonal",
    n_slices=5,
    through="mask",
    window="shared",
    percentiles=(1, 99),
    overlay="contour",
    max_subjects=40,
    n_cols=None,
    figsize=None,
    file=None,
):
    """Show the images of N subjects with their masks drawn over them.

    Each subject is a block of panels (one per slice) titled with its index
    label and site. Images are read with :func:`~sklearn_medprep.load_image`
    (an unreadable cell is an error naming row, column and file) and shown in
    LPS orientation (axial slices in the radiological convention, superior
    at the top of coronal and sagittal slices), with the voxels' physical
    aspect ratio. A mask on another grid than its image is resampled onto
    the image (nearest neighbour, through physical space).

    Parameters
    ----------
    table : pandas.DataFrame
        The subject table.
    image : str, default="image"
        Image column.
    mask : str or None, default="mask"
        Mask column drawn over the image; None draws none.
    site : str or None, default="site"
        Column named in the titles; None for a table without one.
    subjects : int, list of index labels or None, default=None
        The rows shown: all (None), the first ``subjects``, or these labels.
    %(common)s

    Returns
    -------
    fig : matplotlib.figure.Figure

    See Also
    --------
    plot_preprocessing : the same subjects before and after preprocessing.
    plot_augmentations : several augmentation draws of each subject.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn_medprep import plot_subjects
    >>> from sklearn_medprep.datasets import make_multisite_cohort
    >>> table = make_multisite_cohort(4, 2, shape=(20, 22, 18), random_state=0)
    >>> fig = plot_subjects(table)
    >>> len([ax for ax in fig.axes if ax.get_visible()])  # 4 subjects x 3 views
    12
    >>> fig.axes[0].get_title().splitlines()[0]
    'sub-000 | site_A'
    """
    _check_options("plot_subjects", view, n_slices, through, window,
                   percentiles, overlay, max_subjects)
    table = check_subject_table(table, columns=[image, mask, site])
    shown = _shown_rows(table, subjects, max_subjects, "plot_subjects")
    read = _reader(image, mask, view, n_slices, through)
    masks = shown[mask].tolist() if mask is not None else [None] * len(shown)
    blocks = [
        {
            "row": row,
            "site": site_value,
            "stages": [
                read(cell, mask_cell, row)
            ],
        }
        for row, cell, mask_cell, site_value in zip(
            shown.index, shown[image].tolist(), masks, _site_values(shown, site)
        )
    ]
    views = _view_words(view, n_slices, through, blocks)
    heading = f"{len(blocks)} subjects, {views}"
    return _figure(
        blocks, stage_names=[""], groups=[""], window=window,
        percentiles=percentiles, overlay=overlay, n_cols=n_cols, figsize=figsize,
        heading=heading, file=file, inputs=_inputs(shown[image], masks),
    )


def _columns_of(estimator, image):
    """The image column shown and the mask column of a TorchIO estimator."""
    images = estimator.image if isinstance(estimator.image, list) else [
        estimator.image
    ]
    if image is None:
        image = images[0]
    elif image not in images:
        raise ValueError(
            f"image={image!r} is not one of the estimator's image columns {images}"
        )
    return image, estimator.mask


@fill_common_doc
def plot_preprocessing(
    preprocessor,
    table,
    *,
    image=None,
    site="site",
    subjects=None,
    view="orthogonal",
    n_slices=5,
    through="mask",
    window="shared",
    percentiles=(1, 99),
    overlay="contour",
    max_subjects=40,
    n_cols=None,
    figsize=None,
    file=None,
):
    """Show the same subjects before and after a fitted TorchIOPreprocessor.

    Each subject is a block: its image as read, then as the fitted
    preprocessor returns it (``preprocessor.transform``), each with its mask
    (the preprocessor's ``mask`` column, transformed with the image) drawn
    over it and the slices placed on each version's own mask (a crop moves
    the voxel indices). Preprocessing changes the units (z-scores, landmarks),
    so with ``window="shared"`` each stage has its own window shared by all
    subjects (stated in the suptitle).

    Parameters
    ----------
    preprocessor : TorchIOPreprocessor
        Fitted (on training rows: showing test rows is what a reviewer wants).
    table : pandas.DataFrame
        The subject table (the columns the preprocessor was fitted on).
    image : str or None, default=None
        Image column shown, one of the preprocessor's; None takes its first.
    site : str or None, default="site"
        Column named in the titles; None for a table without one.
    subjects : int, list of index labels or None, default=None
        The rows shown: all (None), the first ``subjects``, or these labels.
    %(common)s

    Returns
    -------
    fig : matplotlib.figure.Figure

    Raises
    ------
    sklearn.exceptions.NotFittedError
        The preprocessor is not fitted.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import torchio as tio
    >>> from sklearn_medprep import TorchIOPreprocessor, plot_preprocessing
    >>> from sklearn_medprep.datasets import make_multisite_cohort
    >>> table = make_multisite_cohort(4, 2, shape=(20, 22, 18), random_state=0)
    >>> pre = TorchIOPreprocessor(
    ...     tio.Compose([tio.CropOrPad((12, 12, 12)), tio.ZNormalization()])
    ... ).fit(table)
    >>> fig = plot_preprocessing(pre, table, view="axial")
    >>> [ax.get_title().splitlines()[1].split()[0] for ax in fig.axes[:2]]
    ['before', 'after']
    """
    _check_options("plot_preprocessing", view, n_slices, through, window,
                   percentiles, overlay, max_subjects)
    check_is_fitted(preprocessor, "transform_")
    image, mask = _columns_of(preprocessor, image)
    table = check_subject_table(table, columns=[image, mask, site])
    shown = _shown_rows(table, subjects, max_subjects, "plot_preprocessing")
    read = _reader(image, mask, view, n_slices, through)
    after = preprocessor.transform(shown)
    masks = shown[mask].tolist() if mask is not None else [None] * len(shown)
    masks_after = after[mask].tolist() if mask is not None else [None] * len(shown)
    blocks = []
    for row, before_cell, mask_cell, after_cell, after_mask, site_value in zip(
        shown.index, shown[image].tolist(), masks, after[image].tolist(),
        masks_after, _site_values(shown, site),
    ):
        blocks.append({
            "row": row,
            "site": site_value,
            "stages": [
                read(before_cell, mask_cell, row),
                read(after_cell, after_mask, row),
            ],
        })
    heading = (
        f"{len(blocks)} subjects before and after {type(preprocessor).__name__}, "
        f"{_view_words(view, n_slices, through, blocks)}"
    )
    return _figure(
        blocks, stage_names=["before", "after"], groups=["before", "after"],
        window=window, percentiles=percentiles, overlay=overlay, n_cols=n_cols,
        figsize=figsize,
        heading=heading, file=file, inputs=_inputs(shown[image], masks),
    )


@fill_common_doc
def plot_augmentations(
    augmenter,
    table,
    *,
    n_draws=3,
    random_state=None,
    image=None,
    site="site",
    subjects=None,
    view="axial",
    n_slices=5,
    through="mask",
    window="shared",
    percentiles=(1, 99),
    overlay="contour",
    max_subjects=40,
    n_cols=None,
    figsize=None,
    file=None,
):
    """Show several augmentation draws of each subject beside the original.

    A clone of ``augmenter`` with ``n_augmentations=n_draws`` draws the copies
    with :meth:`~sklearn_medprep.TorchIOAugmenter.fit_resample` on the rows
    shown (``augmenter`` itself is left as it is): each subject is a block of
    the original then draw 1 to ``n_draws``, each with its own (augmented)
    mask drawn over it. The same ``random_state`` gives the same draws. One
    grey window is shared by the original and the draws (so an intensity
    augmentation shows as a change of brightness). The draws of the subjects
    shown are made at once, as ``fit_resample`` makes them, and held in memory
    until they are sliced: show few subjects of large images.

    Parameters
    ----------
    augmenter : TorchIOAugmenter or TorchIOAugmentSampler
        The augmentation (fitted or not).
    table : pandas.DataFrame
        The subject table.
    n_draws : int, default=3
        Augmented copies per subject.
    random_state : int, RandomState instance or None, default=None
        Seed of the draws; None keeps the augmenter's own ``random_state``.
    image : str or None, default=None
        Image column shown, one of the augmenter's; None takes its first.
    site : str or None, default="site"
        Column named in the titles; None for a table without one.
    subjects : int, list of index labels or None, default=None
        The rows shown: all (None), the first ``subjects``, or these labels.
    %(common)s

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import torchio as tio
    >>> from sklearn_medprep import TorchIOAugmenter, plot_augmentations
    >>> from sklearn_medprep.datasets import make_multisite_cohort
    >>> table = make_multisite_cohort(4, 2, shape=(20, 22, 18), random_state=0)
    >>> augmenter = TorchIOAugmenter(tio.RandomAffine(degrees=10))
    >>> fig = plot_augmentations(augmenter, table, n_draws=2, random_state=0)
    >>> [ax.get_title().splitlines()[1].rsplit(" ", 2)[0] for ax in fig.axes[:3]]
    ['original', 'draw 1', 'draw 2']
    """
    _check_options("plot_augmentations", view, n_slices, through, window,
                   percentiles, overlay, max_subjects)
    if not isinstance(n_draws, Integral) or n_draws < 1:
        raise ValueError(f"n_draws must be a positive integer, got {n_draws!r}")
    image, mask = _columns_of(augmenter, image)
    table = check_subject_table(table, columns=[image, mask, site])
    shown = _shown_rows(table, subjects, max_subjects, "plot_augmentations")
    read = _reader(image, mask, view, n_slices, through)
    drawer = clone(augmenter).set_params(n_augmentations=int(n_draws))
    if random_state is not None:
        drawer.set_params(random_state=random_state)
    resampled, _ = drawer.fit_resample(shown, None)
    n = shown.shape[0]
    cells = resampled[image].tolist()
    mask_cells = resampled[mask].tolist() if mask is not None else [None] * len(cells)
    blocks = []
    for i, (row, site_value) in enumerate(zip(shown.index, _site_values(shown, site))):
        blocks.append({
            "row": row,
            "site": site_value,
            "stages": [
                read(cells[k * n + i], mask_cells[k * n + i], row)
                for k in range(n_draws + 1)
            ],
        })
    seed = drawer.get_params()["random_state"]
    heading = (
        f"{len(blocks)} subjects, original and {n_draws} draws of "
        f"{type(augmenter).__name__} (random_state={seed!r}), "
        f"{_view_words(view, n_slices, through, blocks)}"
    )
    stages = ["original"] + [f"draw {k}" for k in range(1, n_draws + 1)]
    return _figure(
        blocks, stage_names=stages, groups=[""] * len(stages), window=window,
        percentiles=percentiles, overlay=overlay, n_cols=n_cols, figsize=figsize,
        heading=heading, file=file,
        inputs=_inputs(shown[image], shown[mask] if mask is not None else []),
    )
