"""The patch-based skorch net for segmentation: a label map per subject.

Training and grid inference are those of
:class:`~sklearn_medprep.PatchNeuralNetClassifier` (the mixin of
``_patch_mixin.py``, which both nets share); this module adds the voxel-wise
target, the :class:`torchio.GridAggregator` that stitches patch outputs back
into volumes, and outputs as subject tables.
Imports torch, TorchIO and skorch (through ``_patch_mixin``) when imported.
"""

import numpy as np
import pandas as pd
import torch
from skorch import NeuralNet

from ..exceptions import SubjectTableError
from ..io._read import to_torchio
from ..table._checks import check_subject_table
from ._patch_doc import _SHARED_DOC
from ._patch_mixin import _PatchNetMixin
from ._patches import sliding_window

__all__ = ["PatchNeuralNetSegmenter"]


class PatchNeuralNetSegmenter(_PatchNetMixin, NeuralNet):
    __doc__ = """Segment whole volumes with a skorch net trained on TorchIO patches.

    ``X`` is the subject table; the target is its ``label`` column of label
    maps (so that a :class:`~sklearn_medprep.TorchIOPreprocessor` before this
    step, with ``mask=label``, moves it with the images); ``y`` is ignored.
    Training batches are ``(image patches, label patches)`` drawn by a
    ``sampler`` through a :class:`torchio.Queue` that reads the rows lazily
    (memory bounded by ``queue_length``); validation patches get no
    ``augmentation``.

    ``predict_proba`` runs the module over the patches of a
    :class:`torchio.GridSampler` of each volume and stitches the class scores
    back with a :class:`torchio.GridAggregator` (``overlap_mode``), then
    applies softmax over the class channel (``predict_nonlinearity="auto"``).
    Outputs are subject tables (index of ``X``) whose cells have the geometry
    (affine) of the input image: a ``torchio.ScalarImage`` of class
    probabilities, or a ``torchio.LabelMap`` for ``predict`` in a column named
    ``label`` (write one with ``.save(path)``, or all with
    :meth:`write_predictions`).
""" + _SHARED_DOC.replace("%(label)s", ", default ``label``") + """\
    label : str, default="mask"
        Column of the label maps to learn (integer classes ``0..K-1``).
    overlap_mode : {"crop", "average", "hann"}, default="average"
        How the outputs of overlapping grid patches combine.
    criterion : torch criterion class, default=torch.nn.CrossEntropyLoss
        The loss on ``(B, K, w, h, d)`` scores against ``(B, w, h, d)`` labels.
    use_caching : False, default=False
        skorch's caching of the validation batches' predictions for scoring
        callbacks. The batches are patches, so it stays off: a scoring
        callback such as ``EpochScoring(None, name="valid_dice",
        lower_is_better=False)`` scores the validation *subjects* through
        :meth:`score` (mean Dice); any other value is refused.
    **kwargs : dict
        Any other :class:`skorch.NeuralNet` parameter.

    Attributes
    ----------
    n_features_in_ : int
        Number of columns of the table seen in fit.
    feature_names_in_ : ndarray of str
        Columns of the table seen in fit.

    See Also
    --------
    PatchNeuralNetClassifier : one class per subject.

    Examples
    --------
    >>> import torch
    >>> from sklearn_medprep import PatchNeuralNetSegmenter
    >>> from sklearn_medprep.datasets import make_multisite_cohort
    >>> table = make_multisite_cohort(4, 2, shape=(10, 11, 12), random_state=0)
    >>> net = PatchNeuralNetSegmenter(
    ...     torch.nn.Conv3d(1, 3, 3, padding=1), patch_size=6, max_epochs=1,
    ...     samples_per_volume=2, queue_length=8, train_split=None, verbose=0,
    ...     random_state=0)
    >>> seg = net.fit(table).predict(table)
    >>> seg.index.equals(table.index), seg["mask"].iloc[0].shape
    (True, (1, 10, 11, 12))
    """

    _target = "label"

    def __init__(
        self,
        module,
        *,
        image="image",
        label="mask",
        patch_size=32,
        samples_per_volume=8,
        queue_length=64,
        sampler="uniform",
        sampling_map=None,
        label_probabilities=None,
        preprocessing=None,
        augmentation=None,
        patch_overlap=0,
        padding_mode=None,
        overlap_mode="average",
        queue_num_workers=0,
        random_state=None,
        criterion=torch.nn.CrossEntropyLoss,
        use_caching=False,
        **kwargs,
    ):
        super().__init__(
            module, criterion=criterion, use_caching=use_caching, **kwargs
        )
        self.image = image
        self.label = label
        self.patch_size = patch_size
        self.samples_per_volume = samples_per_volume
        self.queue_length = queue_length
        self.sampler = sampler
        self.sampling_map = sampling_map
        self.label_probabilities = label_probabilities
        self.preprocessing = preprocessing
        self.augmentation = augmentation
        self.patch_overlap = patch_overlap
        self.padding_mode = padding_mode
        self.overlap_mode = overlap_mode
        self.queue_num_workers = queue_num_workers
        self.random_state = random_state

    def _label_column(self):
        return self.label

    def _get_predict_nonlinearity(self):
        if self.predict_nonlinearity == "auto" and isinstance(
            self.criterion_, torch.nn.CrossEntropyLoss
        ):
            return lambda out: torch.softmax(out, dim=1)
        return super()._get_predict_nonlinearity()

    def _volumes(self, X):
        """Yield ``(row, first input image, probability tensor)`` per row."""
        dataset = self._predict_dataset(X)
        forward = self._patch_forward(self._get_predict_nonlinearity())
        for i in range(len(dataset)):
            subject = dataset[i]
            out = sliding_window(
                forward,
                subject,
                dataset.images,
                self._patch_size(),
                patch_overlap=self.patch_overlap,
                overlap_mode=self.overlap_mode,
                padding_mode=self.padding_mode,
                batch_size=self._grid_batch_size(),
            )
            yield dataset.rows[i], subject[dataset.images[0]], out

    def predict_proba(self, X):
        """Class probability maps of each subject, in its geometry.

        Parameters
        ----------
        X : pandas.DataFrame
            The subject table (its ``image`` columns).

        Returns
        -------
        pandas.DataFrame
            Index of ``X``, one column ``f"{label}_proba"`` of
            ``torchio.ScalarImage`` cells: ``(K, W, H, D)`` float32
            probabilities with the input's affine.
        """
        import torchio as tio

        cells = [
            tio.ScalarImage(tensor=out.float(), affine=image.affine)
            for _, image, out in self._volumes(X)
        ]
        return self._table(X, cells, f"{self.label}_proba")

    def predict(self, X):
        """Label map of each subject (most probable class per voxel).

        Parameters
        ----------
        X : pandas.DataFrame
            The subject table.

        Returns
        -------
        pandas.DataFrame
            Index of ``X``, one column named ``label`` of ``torchio.LabelMap``
            cells: ``(1, W, H, D)`` int64 label maps with the input's affine,
            ready to be the mask column of a
            :class:`~sklearn_medprep.RadiomicsExtractor`.
        """
        import torchio as tio

        cells = [
            tio.LabelMap(
                tensor=out.argmax(0, keepdim=True).to(torch.int64),
                affine=image.affine,
            )
            for _, image, out in self._volumes(X)
        ]
        return self._table(X, cells, self.label)

    @staticmethod
    def _table(X, cells, column):
        return pd.DataFrame(
            {column: pd.Series(cells, index=X.index, dtype=object)}, index=X.index
        )

    def write_predictions(self, X, folder, *, suffix="_seg.nii.gz"):
        """Write the label map of each row to ``folder``; return the paths.

        Parameters
        ----------
        X : pandas.DataFrame
            The subject table.
        folder : str or pathlib.Path
            Output folder (created).
        suffix : str, default="_seg.nii.gz"
            File name after the row's index label.

        Returns
        -------
        pandas.Series of str
            Paths, index of ``X``.
        """
        from pathlib import Path

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for row, label_map in self.predict(X)[self.label].items():
            path = folder / f"{row}{suffix}"
            label_map.save(path)
            paths.append(str(path))
        return pd.Series(paths, index=X.index, dtype=object)

    def score(self, X, y=None):
        """Mean Dice of the foreground classes against the ``label`` column.

        For each subject, the Dice coefficient ``2|P & T| / (|P| + |T|)`` of
        each class ``1..K-1`` (1 where both are empty), averaged over classes,
        then over subjects.

        Parameters
        ----------
        X : pandas.DataFrame
            The subject table, with the ``label`` column.
        y : None
            Ignored.

        Returns
        -------
        float
        """
        check_subject_table(X, columns=[self.label], estimator=type(self).__name__)
        scores = []
        predictions = self.predict(X)[self.label]
        for (row, predicted), cell in zip(predictions.items(), X[self.label]):
            truth = to_torchio(cell, label=True, row=row, column=self.label).data
            pred = predicted.data
            if truth.shape != pred.shape:
                raise SubjectTableError(
                    f"label map shape {tuple(truth.shape)} differs from the "
                    f"image's {tuple(pred.shape)}",
                    row=row,
                    column=self.label,
                )
            n_classes = max(int(truth.max()), int(pred.max()), 1) + 1
            dice = []
            for k in range(1, n_classes):
                t, p = truth == k, pred == k
                total = int(t.sum() + p.sum())
                dice.append(1.0 if total == 0 else 2 * int((t & p).sum()) / total)
            scores.append(float(np.mean(dice)))
        return float(np.mean(scores))
