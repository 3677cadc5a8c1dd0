"""The parameter text shared by the docstrings of the two patch nets."""

_SHARED_DOC = """
    Parameters
    ----------
    module : torch.nn.Module class or instance
        The network, taking ``(B, C, w, h, d)`` patches (``C`` = number of
        ``image`` columns), as for any skorch net.
    image : str or list of str, default="image"
        Image column(s) of the subject table, stacked as input channels: paths
        (read when the queue samples the subject) or in-memory images.
    patch_size : int or tuple of 3 int, default=32
        Patch shape in voxels (TorchIO's ``W, H, D`` order).
    samples_per_volume : int, default=8
        Patches drawn from each training subject per epoch.
    queue_length : int, default=64
        Patches the :class:`torchio.Queue` holds at most (its ``max_length``):
        with the subjects being sampled, what bounds training memory.
    sampler : {"uniform", "weighted", "label"}, default="uniform"
        :class:`torchio.UniformSampler`, :class:`torchio.WeightedSampler`
        (probability map in column ``sampling_map``) or
        :class:`torchio.LabelSampler` (label map in ``sampling_map``%(label)s).
    sampling_map : str or None, default=None
        Column of the maps the weighted or label sampler draws from; read at
        training time only.
    label_probabilities : dict or None, default=None
        Probability of each label as a patch centre (label sampler).
    preprocessing : torchio.Transform, list of torchio.Transform or None, \
default=None
        Deterministic transform applied to every subject when it is read
        (training, validation and prediction), e.g. ``tio.ZNormalization()``
        or ``tio.Resample(1)``: preprocessing that stays lazy, where a
        :class:`~sklearn_medprep.TorchIOPreprocessor` before the net would hold
        the whole preprocessed cohort in memory. Nothing is learned from the
        data in it (use the preprocessor for that).
    augmentation : torchio.Transform, list of torchio.Transform or None, \
default=None
        Applied to each training subject before its patches are drawn, fresh
        every epoch; never to validation patches or at predict time.
    patch_overlap : int or tuple of 3 int, default=0
        Overlap of neighbouring grid patches at predict time.
    padding_mode : str, float or None, default=None
        Padding of each volume before the grid (TorchIO's ``padding_mode``).
    queue_num_workers : int, default=0
        Processes of the queue that read and augment subjects.
    random_state : int, RandomState instance or None, default=None
        Seed of every draw of ``fit``; the same seed gives the same net. The
        caller's global torch and numpy random states are left untouched. On
        a CUDA ``device`` it also seeds that device's generator (dropout),
        restored after ``fit``.
    device : str or torch.device, default="cpu"
        skorch's ``device``, where the module runs: ``"cuda"`` (or
        ``"cuda:1"``, ...) trains it and runs grid inference on that GPU.
        Subjects are read, transformed (``preprocessing``, ``augmentation``)
        and cut into patches on the CPU by the queue; each batch of patches is
        moved to the device, and at predict time each batch of patch outputs
        is brought back to the CPU, where the grid aggregator stitches them.
        ``benchmarks/bench_gpu.py`` times CPU against GPU in one run.
"""
