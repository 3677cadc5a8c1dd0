"""Estimator tags for subject-table (image) input, the scikit-learn 1.6+ way."""

from dataclasses import dataclass, fields

from sklearn.utils import InputTags

__all__ = ["SubjectTableInputTags", "subject_table_input_tags"]


@dataclass(slots=True)
class SubjectTableInputTags(InputTags):
    """Input tags of estimators that read a subject table.

    Extends :class:`sklearn.utils.InputTags` the way nilearn adds ``niimg_like``.
    ``two_d_array`` stays True so that the scikit-learn checks that apply to a
    table still run.

    Parameters
    ----------
    subject_table : bool, default=True
        The estimator reads a :class:`pandas.DataFrame` with named columns
        (images and/or metadata) rather than an anonymous numeric array.
    image : bool, default=False
        Some of the columns it reads hold images (paths or in-memory images).
    """

    subject_table: bool = True
    image: bool = False


def subject_table_input_tags(input_tags, *, image, **overrides):
    """Return ``input_tags`` upgraded to :class:`SubjectTableInputTags`.

    Parameters
    ----------
    input_tags : InputTags
        The tags from ``super().__sklearn_tags__().input_tags``.
    image : bool
        Whether the estimator reads image columns.
    **overrides
        Other input tags to set (``allow_nan=True``, ``string=True``, ...).

    Returns
    -------
    SubjectTableInputTags
    """
    # a shallow copy (the tags are flags): ``dataclasses.asdict`` deep-copies,
    # and tags are asked for on every validate_data of every fit and transform
    values = {f.name: getattr(input_tags, f.name) for f in fields(input_tags)}
    values.update(overrides)
    values.update(subject_table=True, image=image)
    return SubjectTableInputTags(**values)
