"""Patches of the subject table: a lazy subject dataset, a TorchIO queue, a grid.

The pieces that :class:`~sklearn_medprep.PatchNeuralNetClassifier` and
:class:`~sklearn_medprep.PatchNeuralNetSegmenter` put together, usable on their
own:

- :class:`PatchTableDataset`: the public
  :class:`~sklearn_medprep.nets.SubjectTableDataset` (row ``i`` of a subject
  table as a :class:`torchio.Subject`, its images read only when the row is
  asked for, so that a :class:`torchio.Queue` over it holds a few volumes at
  a time) as skorch's nets expect it;
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

from sklearn.utils import _safe_indexing
from skorch.dataset import Dataset

from ._dataset import SubjectTableDataset

__all__ = [
    "PatchCollate",
    "PatchTableDataset",
    "grid_patch_outputs",
    "make_patch_queue",
    "patch_shape",
    "sliding_window",
]

#: Key of the per-row target (class index) inside each subject and patch.
TARGET_KEY = "medprep_target"

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


class PatchTableDataset(SubjectTableDataset, Dataset):
    """:class:`~sklearn_medprep.nets.SubjectTableDataset` for the patch nets.

    The public dataset (rows read when asked for, each file checked once),
    also a :class:`skorch.dataset.Dataset`, as skorch's ``fit`` and scoring
    callbacks expect: the class index of each row under
    ``"medprep_target"`` (copied into every patch), no row key, and ``y``,
    the target as given to ``fit``.

    Parameters
    ----------
    X, images, label, sampling_map, targets, transform, min_shape
        As :class:`~sklearn_medprep.nets.SubjectTableDataset`; ``min_shape``
        is the patch size.
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

    target_key = TARGET_KEY
    row_key = None
    _min_shape_name = "the patch size"
    _min_shape_hint = " or take smaller patches"

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
        SubjectTableDataset.__init__(
            self,
            X,
            images,
            label=label,
            sampling_map=sampling_map,
            targets=targets,
            transform=transform,
            min_shape=min_shape,
        )
        self.y = y

    def subset(self, indices):
        """Return the dataset of rows ``indices`` (positions), same settings."""
        new = SubjectTableDataset.subset(self, indices)
        if self.y is not None:
            new.y = _safe_indexing(self.y, [int(i) for i in indices])
        return new


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
    dataset : PatchTableDataset
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
