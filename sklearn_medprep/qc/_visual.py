"""Building blocks of the visual QC figures: slices, windows, overlays, layout.

The figures of :mod:`sklearn_medprep.qc._montage` are grids of *blocks*, one
block per subject; a block holds one or more *stages* (the image as read,
after preprocessing, augmentation draws), and each stage one or more
*panels* (one view, three orthogonal views, or a montage of axial slices).
Every panel is a 2D slice of the image in grey levels, with the mask drawn
over it (contours or translucent colour), in the intensity window of its
group.

Volumes are read through :func:`sklearn_medprep.io.load_image` (errors name
row, column and file) and reoriented to LPS (SimpleITK's identity direction),
so that "axial", "coronal" and "sagittal" mean what they say whatever the
file's axis order: axial slices are shown in the radiological convention
(the patient's right on the left of the panel, anterior at the top), coronal
and sagittal slices with superior at the top. Panels keep the physical aspect
ratio of the voxels.
"""

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..exceptions import GeometryMismatchError, SubjectTableError
from ..io._geometry import geometry_of, geometry_problem
from ..io._read import describe_cell, load_image
from ..io._write import full_suffix, write_atomically
from ..utils._optional import import_optional

__all__ = [
    "Volume",
    "digest",
    "draw_panel",
    "fill_common_doc",
    "intensity_window",
    "layout",
    "read_volume",
    "slice_panels",
    "window_sample",
]

VIEWS = ("orthogonal", "axial", "coronal", "sagittal", "montage")
#: Voxels of one image used for its share of a percentile window (every k-th).
WINDOW_SAMPLE = 200_000
#: Axes per figure row the layout aims at (readable at 100% zoom).
MAX_AXES_PER_ROW = 12
TITLE_SIZE = 7


@dataclass
class Volume:
    """One image (and mask) ready to slice.

    Attributes
    ----------
    array : numpy.ndarray
        Intensities, float64, axes ``(z, y, x)`` of the LPS-oriented image;
        ``(1, y, x)`` for a 2D image.
    spacing : tuple of float
        ``(sz, sy, sx)`` in millimetres.
    labels : numpy.ndarray or None
        Integer mask on the same grid, or None.
    is_2d : bool
        Whether the image is 2D (an X-ray; a 3D grid of depth 1 counts).
    """

    array: np.ndarray
    spacing: tuple
    labels: np.ndarray = None
    is_2d: bool = False


def _one_channel(image, row, column, cell):
    n = image.GetNumberOfComponentsPerPixel()
    if n != 1:
        raise SubjectTableError(
            f"visual QC shows grey-level images; this image has {n} channels "
            "(select one channel first)",
            row=row,
            column=column,
            file=describe_cell(cell),
        )
    return image


def _oriented(image):
    if image.GetDimension() == 3 and min(image.GetSize()) > 1:
        return sitk.DICOMOrient(image, "LPS")
    return image


def _as_zyx(image):
    array = sitk.GetArrayFromImage(image)
    spacing = tuple(float(s) for s in reversed(image.GetSpacing()))
    if array.ndim == 2:
        return array[np.newaxis], (1.0, *spacing), True
    if array.shape[0] == 1:  # TorchIO's 2D: a 3D grid of depth 1
        return array, spacing, True
    return array, spacing, False


def read_volume(image_cell, mask_cell=None, *, row=None, image="image", mask=None):
    """Read one row's image (and mask) as a :class:`Volume`.

    The mask is put on the image's grid: a mask on another grid is resampled
    onto it (nearest neighbour) through physical space, so that what is drawn
    is where the mask lies in the patient; a mask that then covers no voxel of
    the image although it has labelled voxels is an error.

    Parameters
    ----------
    image_cell, mask_cell : object
        Cells of the subject table (paths or in-memory images); ``mask_cell``
        None draws no mask.
    row : hashable, default=None
        Row label, named in errors.
    image, mask : str
        Column names, named in errors.

    Returns
    -------
    Volume

    Raises
    ------
    ImageReadError
        A cell cannot be read (row, column and file named).
    GeometryMismatchError
        The mask does not overlap the image in physical space.
    """
    picture = load_image(image_cell, row=row, column=image)
    picture = _one_channel(picture, row, image, image_cell)
    labels = None
    if mask_cell is not None:
        label_image = load_image(mask_cell, row=row, column=mask)
        label_image = _one_channel(label_image, row, mask, mask_cell)
        if label_image.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
            label_image = sitk.Round(label_image)
        label_image = sitk.Cast(label_image, sitk.sitkInt32)
        if label_image.GetDimension() != picture.GetDimension():
            raise GeometryMismatchError(
                f"mask is {label_image.GetDimension()}D, image "
                f"{picture.GetDimension()}D",
                row=row,
                column=mask,
                file=describe_cell(mask_cell),
            )
        if geometry_problem(geometry_of(picture), geometry_of(label_image)):
            had = bool(np.any(sitk.GetArrayViewFromImage(label_image)))
            label_image = sitk.Resample(
                label_image, picture, sitk.Transform(), sitk.sitkNearestNeighbor, 0
            )
            if had and not np.any(sitk.GetArrayViewFromImage(label_image)):
                raise GeometryMismatchError(
                    "the mask does not overlap the image in physical space ("
                    + geometry_problem(
                        geometry_of(picture), geometry_of(load_image(mask_cell))
                    )
                    + ")",
                    row=row,
                    column=mask,
                    file=describe_cell(mask_cell),
                )
        labels, _, _ = _as_zyx(_oriented(label_image))
    array, spacing, is_2d = _as_zyx(_oriented(picture))
    return Volume(array.astype(np.float64), spacing, labels, is_2d)


def _centre(volume, through):
    """Voxel ``(z, y, x)`` the orthogonal slices pass through."""
    if through != "image" and volume.labels is not None:
        inside = volume.labels > 0 if through == "mask" else volume.labels == through
        if inside.any():
            return np.argwhere(inside).mean(axis=0).round().astype(int)
    return np.asarray(volume.array.shape) // 2


def slice_panels(volume, view, *, n_slices=5, through="mask"):
    """The 2D panels of one volume for one view.

    Parameters
    ----------
    volume : Volume
    view : {"orthogonal", "axial", "coronal", "sagittal", "montage"}
        One slice per view through the centre (``through``), the three of
        them, or ``n_slices`` axial slices evenly spaced through the mask's
        extent (the whole image without a labelled voxel). A 2D image gives
        one panel whatever the view.
    n_slices : int, default=5
        Slices of a montage.
    through : {"mask", "image"} or int, default="mask"
        Centre of the slices: the centre of mass of the mask (all labels) or
        of one label, or the image centre (also where the mask or label has no
        voxel).

    Returns
    -------
    list of dict
        Each with ``name`` (e.g. ``"axial z=12"``), ``image``, ``labels``
        (2D arrays; labels None without a mask), ``aspect`` (height / width of
        a pixel) and ``origin`` (``"upper"`` or ``"lower"``).
    """
    a, m = volume.array, volume.labels
    sz, sy, sx = volume.spacing

    def cut(index):
        return None if m is None else m[index].copy()

    if volume.is_2d:
        return [dict(name="2D", image=a[0].copy(), labels=cut(0), aspect=sy / sx,
                     origin="upper")]
    z, y, x = _centre(volume, through)
    axial = dict(name=f"axial z={z}", image=a[z].copy(), labels=cut(z), aspect=sy / sx,
                 origin="upper")
    coronal = dict(name=f"coronal y={y}", image=a[:, y, :].copy(),
                   labels=cut((slice(None), y)), aspect=sz / sx, origin="lower")
    sagittal = dict(name=f"sagittal x={x}", image=a[:, :, x].copy(),
                    labels=cut((slice(None), slice(None), x)), aspect=sz / sy,
                    origin="lower")
    if view == "axial":
        return [axial]
    if view == "coronal":
        return [coronal]
    if view == "sagittal":
        return [sagittal]
    if view == "orthogonal":
        return [axial, coronal, sagittal]
    # montage: axial slices through the mask's extent
    if m is not None and m.any():
        occupied = np.flatnonzero(m.any(axis=(1, 2)))
        first, last = occupied[0], occupied[-1]
    else:
        first, last = 0, a.shape[0] - 1
    picks = np.unique(np.linspace(first, last, n_slices).round().astype(int))
    return [
        dict(name=f"axial z={k}", image=a[k].copy(), labels=cut(k), aspect=sy / sx,
             origin="upper")
        for k in picks
    ]


def window_sample(array):
    """The voxels of one image that count in a window: every k-th, finite.

    At most :data:`WINDOW_SAMPLE` voxels, so that a large image does not set
    the window of small ones (and 40 large images fit in memory).

    Parameters
    ----------
    array : numpy.ndarray

    Returns
    -------
    numpy.ndarray
        1D, float64.
    """
    flat = array.reshape(-1)
    step = max(1, flat.size // WINDOW_SAMPLE)
    values = flat[::step]
    return np.array(values[np.isfinite(values)], dtype=np.float64)


def digest(volume, view, *, n_slices=5, through="mask"):
    """What a figure keeps of one volume: its panels and its window sample.

    The volume itself can then be freed: a figure of 40 large images holds
    only their slices.

    Parameters
    ----------
    volume : Volume
    view, n_slices, through
        As in :func:`slice_panels`.

    Returns
    -------
    dict
        ``panels`` (:func:`slice_panels`), ``sample``
        (:func:`window_sample`) and ``is_2d``.
    """
    return {
        "panels": slice_panels(volume, view, n_slices=n_slices, through=through),
        "sample": window_sample(volume.array),
        "is_2d": volume.is_2d,
    }


def intensity_window(samples, percentiles):
    """One ``(vmin, vmax)`` for several images: percentiles of their samples.

    Parameters
    ----------
    samples : list of numpy.ndarray
        :func:`window_sample` of each image.
    percentiles : tuple of 2 float
        Lower and upper percentile, in [0, 100].

    Returns
    -------
    tuple of float

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_medprep.qc._visual import intensity_window
    >>> intensity_window([np.arange(101.0), np.arange(101.0)], (10, 90))
    (10.0, 90.0)
    """
    values = np.concatenate(samples)
    if values.size == 0:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(values, percentiles))
    if not high > low:
        high = low + 1.0
    return low, high


def label_colour(label):
    """The colour of a mask label (tab10, label 1 first), the same in every figure."""
    mpl = import_optional("matplotlib", "visual QC figures")
    return mpl.colormaps["tab10"]((int(label) - 1) % 10)


def draw_panel(ax, panel, window, *, overlay="contour", title=""):
    """Draw one panel: the slice in grey levels, the mask over it.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    panel : dict
        One item of :func:`slice_panels`.
    window : tuple of float
        ``(vmin, vmax)`` of the grey levels.
    overlay : {"contour", "fill"} or None, default="contour"
        Mask drawn as one contour per label, as translucent colour, or not.
    title : str, default=""

    Returns
    -------
    labels : set of int
        The mask labels drawn in this panel.
    """
    image = panel["image"]
    ax.imshow(image, cmap="gray", vmin=window[0], vmax=window[1],
              aspect=panel["aspect"], origin=panel["origin"],
              interpolation="nearest")
    drawn = set()
    labels = panel["labels"]
    if overlay is not None and labels is not None:
        present = [int(v) for v in np.unique(labels) if v != 0]
        if overlay == "fill" and present:
            rgba = np.zeros((*labels.shape, 4))
            for value in present:
                rgba[labels == value] = label_colour(value)
            rgba[..., 3] = np.where(labels != 0, 0.4, 0.0)
            ax.imshow(rgba, aspect=panel["aspect"], origin=panel["origin"],
                      interpolation="nearest")
        elif overlay == "contour":
            for value in present:
                ax.contour((labels == value).astype(float), levels=[0.5],
                           colors=[label_colour(value)], linewidths=0.9)
        drawn.update(present)
    height, width = image.shape
    ax.set_xlim(-0.5, width - 0.5)
    if panel["origin"] == "upper":
        ax.set_ylim(height - 0.5, -0.5)
    else:
        ax.set_ylim(-0.5, height - 0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=TITLE_SIZE)
    return drawn


def layout(n_blocks, block_width, n_cols=None):
    """Blocks per figure row and figure rows: about square, rows not too wide.

    Parameters
    ----------
    n_blocks : int
        Subjects.
    block_width : int
        Axes per subject.
    n_cols : int or None, default=None
        Blocks per row, if the caller chose.

    Returns
    -------
    tuple of int
        ``(blocks_per_row, n_rows)``.

    Examples
    --------
    >>> from sklearn_medprep.qc._visual import layout
    >>> layout(4, 1), layout(40, 1), layout(40, 3), layout(6, 2)
    ((2, 2), (7, 6), (4, 10), (2, 3))
    """
    if n_cols is None:
        per_row = max(1, MAX_AXES_PER_ROW // block_width)
        n_cols = min(per_row, max(1, int(np.ceil(np.sqrt(n_blocks / block_width)))))
        n_cols = min(n_cols, n_blocks)
    n_cols = max(1, min(int(n_cols), n_blocks))
    return n_cols, int(np.ceil(n_blocks / n_cols))


def save_figure(fig, file, inputs=()):
    """Save ``fig`` to ``file`` through the library's one safe writer.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    file : str or pathlib.Path
        The format is chosen from the name (``.png``, ``.pdf``, ``.svg``).
    inputs : iterable of str, default=()
        Input files that must not be written over.

    Returns
    -------
    str
        The file written.
    """
    return write_atomically(
        file,
        lambda tmp: fig.savefig(tmp, dpi=100),
        suffix=full_suffix(file),
        inputs=[str(i) for i in inputs],
    )


COMMON_DOC = """
    view : {"orthogonal", "axial", "coronal", "sagittal", "montage"}, \
default="orthogonal"
        Three orthogonal slices per image, one of them, or a montage of
        ``n_slices`` axial slices evenly spaced through the mask's extent. A 2D
        image (X-ray) is one panel whatever the view.
    n_slices : int, default=5
        Slices of a montage.
    through : {"mask", "image"} or int, default="mask"
        The slices pass through the centre of mass of the mask (all labels),
        of one mask label (e.g. ``1``, the lesion), or through the image
        centre (also where the mask or label has no voxel).
    window : {"shared", "subject"} or tuple of 2 float, default="shared"
        Grey-level window: the ``percentiles`` of the voxels of all subjects
        shown (one window for the figure, so intensities compare across
        subjects), of each subject's own voxels, or fixed ``(vmin, vmax)``.
        The suptitle states the policy and the values.
    percentiles : tuple of 2 float, default=(1, 99)
        Percentiles of the window.
    overlay : {"contour", "fill"} or None, default="contour"
        Mask drawn as one contour per label, as translucent colour, or not at
        all. Labels keep one colour in every figure (label 1 blue, 2 orange,
        ... as tab10); a legend names the labels drawn.
    max_subjects : int, default=40
        More subjects than this is an error whose message shows how to draw
        them page by page.
    n_cols : int or None, default=None
        Subjects per figure row; by default about square, rows at most 12
        panels wide.
    figsize : tuple or None, default=None
        Figure size in inches; by default it grows with the grid.
    file : str, pathlib.Path or None, default=None
        Save the figure there (format from the suffix, written atomically;
        an input image of the table is never written over)."""


def fill_common_doc(function):
    """Put :data:`COMMON_DOC` in place of ``%(common)s`` in a docstring."""
    if function.__doc__:  # None under python -OO
        function.__doc__ = function.__doc__.replace("    %(common)s", COMMON_DOC[1:])
    return function
