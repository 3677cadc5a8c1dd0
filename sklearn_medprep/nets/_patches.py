"""Patches of the subject table: a lazy subject dataset, a TorchIO queue, a grid.

The pieces that :class:`~sklearn_medprep.PatchNeuralNetClassifier` and
:class:`~sklearn_medprep.PatchNeuralNetSegmenter` put together, usable on their
own:

- :class:`SubjectTableDataset`: row ``i`` of a subject table as a
  :class:`torchio.Subject`, its images read only when the row is asked for, so
  that a :class:`torchio.Queue` over it holds a few volumes at a time;
- :func:`make_patch_queue`: that dataset behind a ``Queue`` with a uniform,
  weighted or label sampler;
- :class:`PatchCollate`: a batch of patch subjects as ``(X, y)`` tensors;
- :func:`grid_patch_outputs` and :func:`sliding_window`: the outputs of a model
  on the patches of a :class:`torchio.GridSampler`, stitched back into a
  volume by a :class:`torchio.GridAggregator`.

torch and TorchIO are imported inside the functions that use them.
"""

import contextlib
import numbers
import os
import stat

import numpy as np
import SimpleITK as sitk
from sklearn.utils import _safe_indexing
from skorch.dataset import Dataset

from ..exceptions import SubjectTableError
from ..io._read import describe_cell, to_torchio

__all__ = [
    "PatchCollate",
    "SubjectTableDataset",
    "grid_patch_outputs",
    "make_patch_queue",
    "patch_shape",
    "sliding_window",
]

#: Key of the per-row target (class index) inside each subject and patch.
TARGET_KEY = "medprep_target"

#: Single-file formats whose content a (size, mtime) pair stands for; a
#: detached header (.nhdr, .mhd) names a data file whose changes it would miss.
_SINGLE_FILE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mha")


def _file_key(cell):
    """``(path, stamp)`` of a single-file image path cell, else None.

    The stamp (device, inode, size, modification and status-change times)
    changes when the file is written to or replaced.
    """
    if not isinstance(cell, (str, os.PathLike)):
        return None
    path = os.fspath(cell)
    if not path.lower().endswith(_SINGLE_FILE_SUFFIXES):
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None  # the full read names what is wrong
    if not stat.S_ISREG(info.st_mode):
        return None
    return path, (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns,
                  info.st_ctime_ns)


@contextlib.contextmanager
def _device_seed(device, seed):
    """Seed the CUDA generator of ``device`` too (dropout on the GPU); restore it.

    :func:`~sklearn_medprep.utils._random.local_seed` seeds the CPU generator
    (weights, patch locations, augmentation), which is what a CPU net draws
    from; a net on a CUDA device draws its dropout masks from that device's
    generator.
    """
    import torch

    if (
        seed is None
        or device is None
        or torch.device(device).type != "cuda"
        or not torch.cuda.is_available()  # skorch says so when it moves the module
    ):
        yield
        return
    device = torch.device(device)
    index = torch.cuda.current_device() if device.index is None else device.index
    with torch.random.fork_rng(devices=[index]):
        with torch.cuda.device(index):
            torch.cuda.manual_seed(seed)
        yield


def _all_finite(tensor):
    return not tensor.is_floating_point() or bool(tensor.isfinite().all())


def patch_shape(patch_size):
    """Return ``patch_size`` as a tuple of three positive ints.

    Parameters
    ----------
    patch_size : int or sequence of 3 int
        One side for a cube, or three sides (TorchIO's ``W, H, D`` order).

    Returns
    -------
    tuple of int

    Examples
    --------
    >>> from sklearn_medprep.nets._patches import patch_shape
    >>> patch_shape(8), patch_shape([4, 5, 1])
    ((8, 8, 8), (4, 5, 1))
    """
    if isinstance(patch_size, numbers.Integral) and not isinstance(patch_size, bool):
        sides = (int(patch_size),) * 3
    else:
        try:
            sides = tuple(int(s) for s in patch_size)
        except (TypeError, ValueError):
            raise TypeError(
                f"patch_size must be an int or 3 ints, got {patch_size!r}"
            ) from None
    if len(sides) != 3 or min(sides) < 1:
        raise ValueError(
            f"patch_size must be one positive int or 3 positive ints, got "
            f"{patch_size!r}"
        )
    return sides


class SubjectTableDataset(Dataset):
    """Rows of a subject table as TorchIO subjects, read when asked for.

    Holds the cells (paths or in-memory images) of the image columns, not the
    images: item ``i`` reads the images of row ``i`` (with the library's
    readers, errors naming row, column and file), applies ``transform`` and
    returns a :class:`torchio.Subject`. A :class:`torchio.Queue` over this
    dataset therefore keeps in memory the patches it queues and the few
    subjects it is sampling from, never the cohort.

    Parameters
    ----------
    X : pandas.DataFrame
        The subject table.
    images : list of str
        Image columns (the input channels, in this order).
    label : str or None, default=None
        Label-map column (segmentation target, or where a label sampler draws
        patch centres), read as a :class:`torchio.LabelMap`.
    sampling_map : str or None, default=None
        Probability-map column of a weighted sampler, read as a
        :class:`torchio.ScalarImage`.
    targets : array-like of int or None, default=None
        Class index of each row (classification), stored in each subject (and
        patch) under ``"medprep_target"``.
    transform : torchio.Transform or None, default=None
        Applied to each subject when it is read (augmentation of training
        subjects).
    min_shape : tuple of int or None, default=None
        Smallest spatial shape accepted (the patch size): a smaller image
        raises an error naming its row.
    y : array-like or None, default=None
        The target as given to ``fit`` (class labels), kept with the table.

    Attributes
    ----------
    X : pandas.DataFrame
        The table (a reference, not a copy) and ``y`` the target, as a
        :class:`skorch.dataset.Dataset` holds them: skorch's scoring
        callbacks (``EpochScoring("accuracy")``) read the validation rows and
        their target from a subset of this dataset, and score them through
        the net's ``predict`` on whole subjects.
    """

    def __init__(
        self,
        X,
        images,
        *,
        label=None,
        sampling_map=None,
        targets=None,
        transform=None,
        min_shape=None,
        y=None,
    ):
        # skorch's Dataset.__init__ is not called: this one reads lazily
        self.X = X
        self.y = y
        self.images = list(images)
        self.label = label
        self.sampling_map = sampling_map
        self.transform = transform
        self.min_shape = min_shape
        self.rows = list(X.index)
        columns = [*self.images, *([label] if label is not None else [])]
        if sampling_map is not None:
            columns.append(sampling_map)
        self.cells = list(X[columns].itertuples(index=False, name=None))
        self.targets = None if targets is None else np.asarray(targets)
        # files read and checked through this dataset (shared by its subsets):
        # path -> its stamp (_file_key) when checked
        self._checked = {}

    def __len__(self):
        return len(self.rows)

    def subset(self, indices):
        """Return the dataset of rows ``indices`` (positions), same settings."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        indices = [int(i) for i in indices]
        new.rows = [self.rows[i] for i in indices]
        new.cells = [self.cells[i] for i in indices]
        new.X = _safe_indexing(self.X, indices)
        if self.y is not None:
            new.y = _safe_indexing(self.y, indices)
        if self.targets is not None:
            new.targets = self.targets[indices]
        return new

    def with_transform(self, transform):
        """Return the same rows with another ``transform``."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.transform = transform
        return new

    def dry_iter(self):
        """Stand-ins for the subjects, without reading them (for ``Queue``).

        :class:`torchio.Queue` counts its patches per epoch from
        ``dry_iter()``; no row here sets its own ``num_samples``.
        """
        return list(self.rows)

    def subject(self, i):
        """Read row ``i`` as a :class:`torchio.Subject`, before ``transform``."""
        import torchio as tio

        row = self.rows[i]
        cells = self.cells[i]
        content = {
            column: self._read(cell, label=False, row=row, column=column)
            for column, cell in zip(self.images, cells)
        }
        n = len(self.images)
        if self.label is not None:
            content[self.label] = self._read(
                cells[n], label=True, row=row, column=self.label
            )
            n += 1
        if self.sampling_map is not None:
            content[self.sampling_map] = self._read(
                cells[n], label=False, row=row, column=self.sampling_map
            )
        subject = tio.Subject(content)
        self._check_one_grid(subject, i)
        if self.min_shape is not None:
            shape = tuple(int(s) for s in subject.spatial_shape)
            if any(s < p for s, p in zip(shape, self.min_shape)):
                raise SubjectTableError(
                    f"image shape {shape} is smaller than the patch size "
                    f"{tuple(self.min_shape)}; pad it (tio.CropOrPad) or take "
                    "smaller patches",
                    row=row,
                    column=self.images[0],
                )
        if self.targets is not None:
            # a key given after construction is not copied into patches
            subject = tio.Subject({**subject, TARGET_KEY: int(self.targets[i])})
        return subject

    def _read(self, cell, *, label, row, column):
        """One cell as a TorchIO image; each file checked once per dataset.

        The first read of a file goes through the library's reader
        (:func:`~sklearn_medprep.io._read.to_torchio`: integrity check of the
        file against its header, non-finite voxels that ITK zeroes put back,
        errors naming row, column and file). A queue reads every training
        subject again each epoch: a NIfTI, NRRD or MHA file already checked,
        unchanged since (same inode, size, modification and status-change
        times) and holding only finite voxels is then read as TorchIO reads it
        (one ``SimpleITK.ReadImage``), which gives the same image without
        decoding the file twice more.
        """
        import torchio as tio

        key = _file_key(cell)
        if key is not None and self._checked.get(key[0]) == key[1]:
            try:
                image = sitk.ReadImage(key[0])
            except RuntimeError:
                del self._checked[key[0]]  # the full read below names the fault
            else:
                cls = tio.LabelMap if label else tio.ScalarImage
                return cls.from_sitk(image)
        image = to_torchio(cell, label=label, row=row, column=column)
        if key is not None and _all_finite(image.data):
            self._checked[key[0]] = key[1]
        return image

    def _check_one_grid(self, subject, i):
        """Every image of row ``i`` on its first image's grid, or an error naming it.

        Shape and affine are compared as TorchIO compares them, so that the
        error names the row, column and file before TorchIO's sampler raises
        a message naming none of them.
        """
        first = self.images[0]
        reference = subject[first]
        ref_shape = tuple(int(n) for n in reference.spatial_shape)
        columns = [*self.images, *([self.label] if self.label is not None else [])]
        if self.sampling_map is not None:
            columns.append(self.sampling_map)
        for position, column in enumerate(columns[1:], start=1):
            image = subject[column]
            shape = tuple(int(n) for n in image.spatial_shape)
            if shape != ref_shape:
                what = f"shape {shape}, not {ref_shape}"
            elif not np.allclose(image.affine, reference.affine):
                what = "same shape, another affine: origin, spacing or direction"
            else:
                continue
            raise SubjectTableError(
                f"image is not on the grid of the {first!r} image ({what}): "
                "every image of a row must share one grid. Resample it onto "
                f"the {first!r} image before this net (e.g. "
                f"tio.Resample({first!r}) on the subject)",
                row=self.rows[i],
                column=column,
                file=describe_cell(self.cells[i][position]),
            )

    def __getitem__(self, i):
        subject = self.subject(int(i))
        if self.transform is not None:
            subject = self.transform(subject)
        return subject


def make_sampler(kind, patch_size, *, label=None, sampling_map=None,
                 label_probabilities=None):
    """Return the TorchIO patch sampler named by ``kind``.

    Parameters
    ----------
    kind : {"uniform", "weighted", "label"}
        :class:`torchio.UniformSampler`, :class:`torchio.WeightedSampler`
        (probability map ``sampling_map``) or :class:`torchio.LabelSampler`
        (label map ``sampling_map``, else ``label``).
    patch_size : tuple of int
        Patch shape.
    label, sampling_map : str or None
        Column names (subject keys).
    label_probabilities : dict or None
        Passed to :class:`torchio.LabelSampler`.

    Returns
    -------
    torchio.data.PatchSampler
    """
    import torchio as tio

    if kind == "uniform":
        return tio.UniformSampler(patch_size)
    if kind == "weighted":
        if sampling_map is None:
            raise ValueError("sampler='weighted' needs sampling_map, a column of "
                             "probability maps")
        return tio.WeightedSampler(patch_size, probability_map=sampling_map)
    name = sampling_map if sampling_map is not None else label
    if name is None:
        raise ValueError("sampler='label' needs a label map: give sampling_map "
                         "(or label, for segmentation)")
    return tio.LabelSampler(
        patch_size, label_name=name, label_probabilities=label_probabilities
    )


def make_patch_queue(dataset, sampler, *, queue_length, samples_per_volume,
                     num_workers=0, shuffle=True):
    """Return a :class:`torchio.Queue` of patches of ``dataset``.

    Parameters
    ----------
    dataset : SubjectTableDataset
        The subjects (read lazily by the queue's subject loader).
    sampler : torchio.data.PatchSampler
        Where patches are drawn.
    queue_length : int
        Maximum number of patches held (``max_length``).
    samples_per_volume : int
        Patches drawn from each subject per epoch.
    num_workers : int, default=0
        Processes reading and transforming subjects.
    shuffle : bool, default=True
        Shuffle subjects and patches.

    Returns
    -------
    torchio.Queue
    """
    import torchio as tio

    return tio.Queue(
        dataset,
        max_length=queue_length,
        samples_per_volume=samples_per_volume,
        sampler=sampler,
        num_workers=num_workers,
        shuffle_subjects=shuffle,
        shuffle_patches=shuffle,
        verbose=False,
    )


class PatchCollate:
    """Collate patch subjects into ``(X, y)`` tensors for a skorch net.

    ``X`` stacks the image columns as channels, ``(B, C, w, h, d)`` float32.
    ``y`` is the class index of each patch's subject (``target="class"``),
    the label-map patch as ``(B, w, h, d)`` int64 (``target="label"``), or
    absent (``target=None``: ``(X, None)``, for inference).

    Parameters
    ----------
    images : list of str
        Image columns.
    target : {"class", "label"} or None
        What ``y`` is.
    label : str or None, default=None
        Label-map column (``target="label"``).
    """

    def __init__(self, images, target=None, label=None):
        self.images = list(images)
        self.target = target
        self.label = label

    def __call__(self, patches):
        import torch

        X = torch.stack(
            [
                torch.cat([patch[c].data for c in self.images], 0)
                if len(self.images) > 1
                else patch[self.images[0]].data
                for patch in patches
            ]
        ).float()
        if self.target == "class":
            y = torch.as_tensor([patch[TARGET_KEY] for patch in patches])
        elif self.target == "label":
            y = torch.stack([patch[self.label].data[0] for patch in patches]).long()
        else:
            y = None
        return X, y


def _grid_sampler(subject, patch_size, patch_overlap, padding_mode):
    import torchio as tio

    return tio.GridSampler(
        subject, patch_size, patch_overlap=patch_overlap, padding_mode=padding_mode
    )


def _grid_batches(sampler, images, batch_size):
    """Yield ``(X, locations)`` batches of the patches of a grid sampler."""
    import torch
    import torchio as tio

    collate = PatchCollate(images)
    patches = []
    for patch in sampler:
        patches.append(patch)
        if len(patches) == batch_size:
            X, _ = collate(patches)
            yield X, torch.stack([p[tio.LOCATION] for p in patches])
            patches = []
    if patches:
        X, _ = collate(patches)
        yield X, torch.stack([p[tio.LOCATION] for p in patches])


def grid_patch_outputs(predict, subject, images, patch_size, *, patch_overlap=0,
                       padding_mode=None, batch_size=16):
    """Outputs of ``predict`` on every patch of a grid over ``subject``.

    Parameters
    ----------
    predict : callable
        Takes a ``(B, C, w, h, d)`` float32 tensor, returns ``(B, ...)``.
    subject : torchio.Subject
        The volume(s).
    images : list of str
        Image keys stacked as channels.
    patch_size : tuple of int
        Patch shape.
    patch_overlap : int or tuple of int, default=0
        Overlap of neighbouring patches (voxels).
    padding_mode : str, float or None, default=None
        Padding of the volume before sampling (TorchIO's ``padding_mode``).
    batch_size : int, default=16
        Patches per forward call.

    Returns
    -------
    outputs : torch.Tensor
        Shape ``(n_patches, ...)``, in grid order.
    sampler : torchio.GridSampler
        The grid (its ``locations`` match the outputs).
    """
    import torch

    sampler = _grid_sampler(subject, patch_size, patch_overlap, padding_mode)
    outputs = [predict(X) for X, _ in _grid_batches(sampler, images, batch_size)]
    return torch.cat(outputs, 0), sampler


def sliding_window(predict, subject, images, patch_size, *, patch_overlap=0,
                   overlap_mode="crop", padding_mode=None, batch_size=16):
    """Voxel-wise outputs of ``predict`` over a whole volume, patch by patch.

    The volume is cut into the patches of a :class:`torchio.GridSampler`;
    ``predict`` maps each batch ``(B, C, w, h, d)`` to ``(B, K, w, h, d)``;
    a :class:`torchio.GridAggregator` stitches the outputs back into a
    ``(K, W, H, D)`` tensor of the volume's shape.

    Parameters
    ----------
    predict : callable
        Patch model, ``(B, C, w, h, d) -> (B, K, w, h, d)``.
    subject : torchio.Subject
        The volume(s).
    images : list of str
        Image keys stacked as channels.
    patch_size : tuple of int
        Patch shape.
    patch_overlap : int or tuple of int, default=0
        Overlap of neighbouring patches (even, for ``overlap_mode="crop"``).
    overlap_mode : {"crop", "average", "hann"}, default="crop"
        How overlapping outputs combine (TorchIO's ``overlap_mode``).
    padding_mode : str, float or None, default=None
        Padding of the volume before sampling.
    batch_size : int, default=16
        Patches per forward call.

    Returns
    -------
    torch.Tensor
        ``(K, W, H, D)``.

    Examples
    --------
    >>> import torch
    >>> import torchio as tio
    >>> from sklearn_medprep.nets._patches import sliding_window
    >>> volume = torch.arange(7 * 8 * 9.0).reshape(1, 7, 8, 9)
    >>> subject = tio.Subject(image=tio.ScalarImage(tensor=volume))
    >>> out = sliding_window(lambda x: x, subject, ["image"], (4, 4, 4),
    ...                      patch_overlap=2)
    >>> torch.equal(out, volume)
    True
    """
    import torchio as tio

    sampler = _grid_sampler(subject, patch_size, patch_overlap, padding_mode)
    aggregator = tio.GridAggregator(sampler, overlap_mode=overlap_mode)
    for X, locations in _grid_batches(sampler, images, batch_size):
        aggregator.add_batch(predict(X), locations)
    return aggregator.get_output_tensor()
