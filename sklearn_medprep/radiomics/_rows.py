"""Several rows per subject: one per ROI (:func:`expand_labels`), one per lesion.

Both functions copy every column of the subject table onto each new row and
add a ``subject`` column holding the subject id, so that the subject-aware
splitters (``groups=`` the subject, e.g.
``sklearn_medprep.model_selection.SiteStratifiedGroupKFold``) keep a subject's
rows in one fold. The subject id is the input row's index label; a table that
already has a ``subject`` column (e.g. one row per visit, indexed by visit)
keeps it unchanged, since it already names the subject of each row.
"""

import numpy as np
import pandas as pd

from ..exceptions import SubjectTableError
from ..io._read import describe_cell, to_sitk
from ..table._checks import check_subject_table
from ._lesions import check_connectivity, label_components

__all__ = ["expand_labels", "expand_lesions"]


def _check_new_columns(table, names, who):
    """Refuse new column names that the table already has (or repeats)."""
    names = [n for n in names if n is not None]
    for name in names:
        if name in table.columns:
            raise SubjectTableError(
                f"{who}: the table already has a column {name!r}; pass another "
                "name for the new column",
                column=name,
            )
    if len(set(names)) != len(names):
        raise ValueError(f"{who}: the new column names must differ, got {names}")


def _has_subject(table, subject):
    """Whether the table has its subject column (checked), or gets the index."""
    if subject is None or subject not in table.columns:
        return False
    missing = table[subject].isna().to_numpy()
    if missing.any():
        raise SubjectTableError(
            "missing subject id: every row needs one, so that a subject's "
            "rows stay in one fold",
            row=table.index[missing.argmax()], column=subject,
        )
    return True


def _labels(labels, who):
    values = [labels] if np.ndim(labels) == 0 else list(labels)
    try:
        out = [int(v) for v in values]
        ok = all(not isinstance(v, (bool, np.bool_, str, bytes))
                 and float(v) == int(v) for v in values)
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok or not values or len(set(out)) != len(out) or min(out) < 1:
        raise ValueError(
            f"{who}: labels must be distinct positive integers, got {labels!r}"
        )
    return out


def _assemble(table, position, new, subject, keys, sep):
    """Rows ``position`` of ``table`` plus the ``new`` columns; index from ``keys``.

    ``subject`` (unless None or already a column) is added from the index.
    """
    out = table.iloc[position].copy()
    if subject is not None and subject not in table.columns:
        out[subject] = table.index.take(position)  # positional, dtype kept
    for name, values in new.items():
        out[name] = np.asarray(values, dtype=np.int64)
    name = table.index.name
    if name is not None and name in out.columns:
        name = None  # an index named like a column is ambiguous in pandas
    out.index = pd.Index(
        [sep.join([str(row), *map(str, key)])
         for row, key in zip(out.index, keys)],
        name=name,
    )
    return out


def expand_labels(table, labels, *, mask="mask", label="label",
                  subject="subject", sep="|"):
    """One row per (subject, label): several ROIs of one mask as several rows.

    Use with ``RadiomicsExtractor(label="label")``, which then reads each row's
    label from that column, and split with ``groups=`` the ``subject`` column
    so that a subject's ROIs stay in one fold.

    Parameters
    ----------
    table : pandas.DataFrame
        The subject table.
    labels : list of int
        Labels to extract.
    mask : str, default="mask"
        Mask column (checked to be present).
    label : str, default="label"
        Name of the new label column.
    subject : str or None, default="subject"
        Column holding each row's subject id: added with the input row's index
        label, or kept unchanged where the table already has it (e.g. a table
        of visits, indexed by visit, naming their subject). None adds nothing.
    sep : str, default="|"
        Separator of the new index labels, ``"<index><sep><label>"``.

    Returns
    -------
    pandas.DataFrame
        Rows subject by subject, labels in the order given; all columns copied,
        plus ``subject`` (where added) and ``label``; index like ``"sub-000|1"``
        named as the input's, unless that name is a column (``"subject"``):
        then unnamed, as pandas finds such a name ambiguous.

    See Also
    --------
    expand_lesions : One row per connected component of a label.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_medprep import expand_labels
    >>> table = pd.DataFrame({"image": ["a.nii"], "mask": ["m.nii"]}, index=["s1"])
    >>> expand_labels(table, [1, 2])
          image   mask subject  label
    s1|1  a.nii  m.nii      s1      1
    s1|2  a.nii  m.nii      s1      2
    """
    who = "expand_labels"
    table = check_subject_table(table, columns=[mask], estimator=who)
    has_subject = _has_subject(table, subject)
    _check_new_columns(table, [label] if has_subject else [label, subject], who)
    labels = _labels(labels, who)
    position = np.repeat(np.arange(len(table)), len(labels))
    values = np.tile(labels, len(table))
    return _assemble(table, position, {label: values}, subject,
                     [(v,) for v in values], sep)


def expand_lesions(table, labels=1, *, mask="mask", connectivity=3, min_voxels=1,
                   empty="raise", subject="subject", label="label",
                   lesion="lesion", voxels="voxels", sep="|"):
    """One row per lesion: each connected component of a label as its own row.

    Each row's mask is read (paths or in-memory images, as the extractor reads
    them) and the voxels of each label are split into connected components by
    :func:`scipy.ndimage.label` with ``generate_binary_structure(ndim,
    connectivity)``. Lesion ``k`` is scipy's component ``k``: numbered
    ``1..n`` in the order of their first voxel in C order of the ``(z, y, x)``
    array. ``RadiomicsExtractor(label="label", lesion="lesion",
    connectivity=...)`` then restricts each row's mask to its lesion, numbered
    by the same rule, and extracts that component only.

    Parameters
    ----------
    table : pandas.DataFrame
        The subject table.
    labels : int or list of int, default=1
        Labels whose lesions are listed, in this order.
    mask : str, default="mask"
        Mask column.
    connectivity : {1, 2, 3}, default=3
        Which neighbours join one lesion: 1 faces (6 neighbours in 3-D, 4 in
        2-D), 2 also edges (18; 8 in 2-D), 3 also corners (26, the full
        neighbourhood most lesion tools use). Give the extractor the same.
    min_voxels : int, default=1
        Components with fewer voxels are not listed (their numbers are skipped,
        so that ``lesion`` stays scipy's number). PyRadiomics refuses a ROI of
        one voxel, or of one line of voxels: such a row fails at extraction,
        naming the row.
    empty : {"raise", "keep"}, default="raise"
        A mask without any listed lesion of a label (no voxel of it, or only
        components under ``min_voxels``): raise an error naming row, column
        and file, or keep one row for it with ``lesion`` 0 and ``voxels`` 0
        (its extraction then fails, naming the row: NaN features with
        ``on_error="nan"``). A subject is never dropped silently.
    subject : str or None, default="subject"
        Column holding each row's subject id: added with the input row's index
        label, or kept where the table already has it. None adds nothing.
    label, lesion, voxels : str, default="label", "lesion", "voxels"
        Names of the new columns: the label, the lesion number and the
        lesion's voxel count.
    sep : str, default="|"
        Separator of the new index labels, ``"<index>|<label>|<lesion>"``.

    Returns
    -------
    pandas.DataFrame
        Rows subject by subject, labels in the order given, lesions by number;
        all columns copied, plus ``subject`` (where added), ``label``,
        ``lesion`` and ``voxels`` (int64). Index named as
        :func:`expand_labels` names it.

    Raises
    ------
    ImageReadError
        A mask that cannot be read (row, column and file named).
    SubjectTableError
        A mask without a lesion of a label (with ``empty="raise"``), or with
        several channels per voxel (row, column and file named).

    See Also
    --------
    expand_labels : One row per (subject, label).

    Examples
    --------
    >>> import numpy as np, pandas as pd, SimpleITK as sitk
    >>> from sklearn_medprep import expand_lesions
    >>> array = np.zeros((5, 6, 7), np.uint8)
    >>> array[1:3, 1:3, 1:3] = 1   # a lesion of 8 voxels
    >>> array[4, 4:6, 5] = 1       # a lesion of 2 voxels
    >>> table = pd.DataFrame({"mask": [sitk.GetImageFromArray(array)]},
    ...                      index=["s1"])
    >>> expand_lesions(table)[["subject", "label", "lesion", "voxels"]]
           subject  label  lesion  voxels
    s1|1|1      s1      1       1       8
    s1|1|2      s1      1       2       2
    """
    who = "expand_lesions"
    table = check_subject_table(table, columns=[mask], estimator=who)
    has_subject = _has_subject(table, subject)
    new_names = [label, lesion, voxels]
    _check_new_columns(table, new_names if has_subject else [*new_names, subject],
                       who)
    labels = _labels(labels, who)
    connectivity = check_connectivity(connectivity)
    if isinstance(min_voxels, (bool, np.bool_)) \
            or not isinstance(min_voxels, (int, np.integer)) or min_voxels < 1:
        raise ValueError(f"{who}: min_voxels must be an integer >= 1, got "
                         f"{min_voxels!r}")
    if empty not in ("raise", "keep"):
        raise ValueError(f"{who}: empty must be 'raise' or 'keep', got {empty!r}")
    position, keys = [], []
    for i, (row, cell) in enumerate(zip(table.index, table[mask])):
        image = to_sitk(cell, row=row, column=mask)
        for value in labels:
            try:
                _, sizes = label_components(image, value, connectivity)
            except SubjectTableError as exc:
                raise SubjectTableError(exc.bare_message, row=row, column=mask,
                                        file=describe_cell(cell)) from None
            found = [(value, k, int(n)) for k, n in enumerate(sizes, start=1)
                     if n >= min_voxels]
            if not found and empty == "raise":
                what = (f"no voxel of label {value}" if not len(sizes) else
                        f"{len(sizes)} lesion(s) of label {value}, none of "
                        f"min_voxels={min_voxels} voxels or more (sizes "
                        f"{sorted(sizes.tolist(), reverse=True)[:10]})")
                raise SubjectTableError(
                    f"the mask holds {what}; pass empty='keep' to keep such a "
                    "subject as one row with lesion 0 (never silently dropped)",
                    row=row, column=mask, file=describe_cell(cell),
                )
            position.extend([i] * max(len(found), 1))
            keys.extend(found or [(value, 0, 0)])
    position = np.asarray(position, dtype=np.intp)
    columns = dict(zip(new_names, zip(*keys))) if keys else \
        {name: [] for name in new_names}
    return _assemble(table, position, columns, subject,
                     [key[:2] for key in keys], sep)

