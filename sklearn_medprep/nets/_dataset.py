"""A subject table as a PyTorch dataset: rows read when asked for, for any loop.

:class:`SubjectTableDataset` needs torch and TorchIO only (no skorch): a plain
PyTorch training loop, a :class:`torchio.Queue` of patches, or any library
that takes a :class:`torch.utils.data.Dataset`.
"""

import os
import stat

import numpy as np
import pandas as pd
import SimpleITK as sitk
import torch

from ..exceptions import SubjectTableError
from ..images._walk import as_transform
from ..io._read import describe_cell, to_torchio

__all__ = ["SubjectTableDataset"]

#: Single-file formats whose content a file stamp stands for; a detached header
#: (.nhdr, .mhd) names a data file whose changes it would miss.
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


def _all_finite(tensor):
    return not tensor.is_floating_point() or bool(tensor.isfinite().all())


class SubjectTableDataset(torch.utils.data.Dataset):
    """Rows of a subject table as TorchIO subjects, each read when it is asked for.

    The dataset holds the table's cells (paths or in-memory images), never the
    images: item ``i`` reads the images of row ``i`` with the library's
    readers (integrity checks; errors name the row, column and file), checks
    that they share one grid, applies ``transform`` and returns a
    :class:`torchio.Subject`. A loop over it, or a :class:`torchio.Queue` of
    patches, keeps in memory the few subjects it is working on, not the
    cohort. Batches come from :class:`torchio.SubjectsLoader` (a
    :class:`torch.utils.data.DataLoader` with TorchIO's collate function).

    Parameters
    ----------
    X : pandas.DataFrame
        The subject table.
    images : str or list of str, default="image"
        Image column(s), read as :class:`torchio.ScalarImage` (the channels of
        a model, in this order); each is a key of the subject.
    label : str or None, default=None
        Label-map column (a segmentation target or a mask), read as a
        :class:`torchio.LabelMap`.
    sampling_map : str or None, default=None
        Probability-map column (where a :class:`torchio.WeightedSampler`
        draws patch centres), read as a :class:`torchio.ScalarImage`.
    targets : array-like of shape (n_rows,) or None, default=None
        One target per row (a class index, a number), in the subject under
        ``"target"``. A column of ``X``: ``targets=X["y"]``.
    transform : torchio.Transform or list of torchio.Transform or None, \
default=None
        Applied to each subject when it is read (preprocessing, or
        augmentation of training rows: its random draws come from torch's
        generator, which :class:`torch.utils.data.DataLoader` seeds per
        worker). Copied; a MONAI transform goes inside ``tio.Lambda``.
    min_shape : tuple of int or None, default=None
        Smallest spatial shape accepted (e.g. a patch size); a smaller image
        raises an error naming its row.

    Attributes
    ----------
    rows : list
        The index labels of ``X``, in order: item ``i`` is row ``rows[i]``,
        and its subject holds the label under ``"row"``.
    X : pandas.DataFrame
        The table (a reference, not a copy).

    See Also
    --------
    sklearn_medprep.PatchNeuralNetClassifier : patch training on a table with skorch.

    Examples
    --------
    A plain PyTorch loop over a table of four subjects, two per batch:

    >>> import torch, torchio as tio
    >>> from sklearn_medprep.datasets import make_multisite_cohort
    >>> from sklearn_medprep.nets import SubjectTableDataset
    >>> table = make_multisite_cohort(4, 2, shape=(8, 8, 8), random_state=0)
    >>> dataset = SubjectTableDataset(
    ...     table, "image", label="mask", targets=table["y"],
    ...     transform=tio.RescaleIntensity(out_min_max=(0, 1)))
    >>> len(dataset), dataset[0]["row"], dataset[0]["image"].shape
    (4, 'sub-000', (1, 8, 8, 8))
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(512, 2))
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> for batch in tio.SubjectsLoader(dataset, batch_size=2):
    ...     x, y = batch["image"][tio.DATA], batch["target"]
    ...     loss = torch.nn.functional.cross_entropy(model(x), y)
    ...     optimizer.zero_grad(); loss.backward(); optimizer.step()
    >>> x.shape, batch["row"]
    (torch.Size([2, 1, 8, 8, 8]), ['sub-002', 'sub-003'])
    """

    #: Subject key of the row's target.
    target_key = "target"
    #: What ``min_shape`` is, and the advice, in the error of a smaller image.
    _min_shape_name = "the smallest shape accepted"
    _min_shape_hint = ""
    #: Subject key of the row's index label.
    row_key = "row"

    def __init__(
        self,
        X,
        images="image",
        *,
        label=None,
        sampling_map=None,
        targets=None,
        transform=None,
        min_shape=None,
    ):
        if not isinstance(X, pd.DataFrame):
            raise TypeError(
                f"X must be a pandas DataFrame (a subject table), got "
                f"{type(X).__name__}"
            )
        self.X = X
        self.images = [images] if isinstance(images, str) else list(images)
        if not self.images:
            raise ValueError("images must name at least one image column")
        self.label = label
        self.sampling_map = sampling_map
        columns = self._columns()
        missing = [c for c in columns if c not in X.columns]
        if missing:
            raise SubjectTableError(
                f"columns {missing} are not in the table (its columns: "
                f"{list(X.columns)})"
            )
        self.transform = (
            None if transform is None else as_transform(transform, "transform")
        )
        self.min_shape = None if min_shape is None else tuple(min_shape)
        self.rows = list(X.index)
        self.cells = list(X[columns].itertuples(index=False, name=None))
        self.targets = None
        if targets is not None:
            values = targets.to_numpy() if isinstance(targets, pd.Series) else targets
            self.targets = np.asarray(values)
            if self.targets.shape[:1] != (len(self.rows),):
                raise ValueError(
                    f"targets has {self.targets.shape[0] if self.targets.ndim else 0}"
                    f" entries, the table {len(self.rows)} rows"
                )
        # files read and checked through this dataset (shared by its subsets):
        # path -> its stamp (_file_key) when checked
        self._checked = {}

    def _columns(self):
        """The image columns, then the label and sampling-map columns given."""
        extra = [c for c in (self.label, self.sampling_map) if c is not None]
        return [*self.images, *extra]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        subject = self.subject(int(i))
        if self.transform is not None:
            subject = self.transform(subject)
        return subject

    def subject(self, i):
        """Read row ``i`` (a position) as a :class:`torchio.Subject`, untransformed.

        Parameters
        ----------
        i : int
            Position of the row.

        Returns
        -------
        torchio.Subject
            The images under their column names, the row's index label under
            ``"row"`` and its target under ``"target"`` (when given).
        """
        import torchio as tio

        row, cells = self.rows[i], self.cells[i]
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
        self._check_one_grid(content, i)
        if self.min_shape is not None:
            shape = tuple(int(s) for s in content[self.images[0]].spatial_shape)
            if any(s < p for s, p in zip(shape, self.min_shape)):
                raise SubjectTableError(
                    f"image shape {shape} is smaller than {self._min_shape_name} "
                    f"{self.min_shape}; pad it (tio.CropOrPad)"
                    f"{self._min_shape_hint}",
                    row=row,
                    column=self.images[0],
                    file=describe_cell(cells[0]),
                )
        if self.row_key is not None:
            content[self.row_key] = row
        if self.targets is not None:
            value = self.targets[i]
            content[self.target_key] = value.item() if hasattr(value, "item") else value
        return tio.Subject(content)

    def dry_iter(self):
        """Stand-ins for the subjects, none read (for :class:`torchio.Queue`).

        A queue counts its patches per epoch from ``dry_iter()``; no row sets
        its own ``num_samples``.

        Returns
        -------
        list
            The row labels.
        """
        return list(self.rows)

    def _read(self, cell, *, label, row, column):
        """One cell as a TorchIO image; each file checked once per dataset.

        The first read of a file goes through the library's reader
        (:func:`~sklearn_medprep.io._read.to_torchio`: integrity check of the
        file against its header, non-finite voxels that ITK zeroes put back,
        errors naming row, column and file). A loop or a queue reads every
        training subject again each epoch: a NIfTI, NRRD or MHA file already
        checked, unchanged since (same inode, size, modification and
        status-change times) and holding only finite voxels is then read as
        TorchIO reads it (one ``SimpleITK.ReadImage``), which gives the same
        image without decoding the file twice more.
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

    def _check_one_grid(self, content, i):
        """Every image of row ``i`` on its first image's grid, or an error naming it.

        Shape and affine are compared as TorchIO compares them, so that the
        error names the row, column and file before TorchIO's sampler raises
        a message naming none of them.
        """
        columns = self._columns()
        first = columns[0]
        reference = content[first]
        ref_shape = tuple(int(n) for n in reference.spatial_shape)
        for position, column in enumerate(columns[1:], start=1):
            image = content[column]
            shape = tuple(int(n) for n in image.spatial_shape)
            if shape != ref_shape:
                what = f"shape {shape}, not {ref_shape}"
            elif not np.allclose(image.affine, reference.affine):
                what = "same shape, another affine: origin, spacing or direction"
            else:
                continue
            raise SubjectTableError(
                f"image is not on the grid of the {first!r} image ({what}): "
                "every image of a row must share one grid. Resample it first "
                f"(e.g. tio.Resample({first!r}) in a TorchIOPreprocessor)",
                row=self.rows[i],
                column=column,
                file=describe_cell(self.cells[i][position]),
            )

    def subset(self, indices):
        """Return the dataset of the rows at positions ``indices``, same settings.

        Parameters
        ----------
        indices : array-like of int
            Positions.

        Returns
        -------
        SubjectTableDataset
        """
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        indices = [int(i) for i in indices]
        new.rows = [self.rows[i] for i in indices]
        new.cells = [self.cells[i] for i in indices]
        new.X = self.X.iloc[indices]
        if self.targets is not None:
            new.targets = self.targets[indices]
        return new

    def with_transform(self, transform):
        """Return the same rows with another ``transform`` (files checked once).

        Parameters
        ----------
        transform : torchio.Transform or list of torchio.Transform or None

        Returns
        -------
        SubjectTableDataset
        """
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.transform = (
            None if transform is None else as_transform(transform, "transform")
        )
        return new
