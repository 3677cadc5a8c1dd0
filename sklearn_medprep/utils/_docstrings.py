"""Shared parameter descriptions, substituted into docstrings with :func:`fill_doc`.

As nilearn's ``fill_doc`` and imbalanced-learn's ``Substitution``: ``image``,
``mask``, ``site``, ``n_jobs``, ``memory``, ... read the same everywhere.
"""

__all__ = ["fill_doc", "DOCDICT"]

DOCDICT = {
    "image": """image : str, default="image"
        Column of the subject table holding the image of each row: a path (NIfTI
        ``.nii``/``.nii.gz``, NRRD, MHA/MHD, FreeSurfer ``.mgz``/``.mgh``, a DICOM
        series folder, PNG/JPEG) or an
        in-memory image (``torchio.ScalarImage``, ``SimpleITK.Image``, nibabel
        image).""",
    "mask": """mask : str or None, default="mask"
        Column holding the mask (label map) of each row, in the same forms as
        ``image``; it must share the image's geometry.""",
    "site": """site : str, default="site"
        Column holding the acquisition site (scanner, centre) of each row.""",
    "n_jobs": """n_jobs : int or None, default=None
        Number of joblib workers (processes). ``None`` means 1 unless in a
        :func:`joblib.parallel_config` context; ``-1`` uses all cores. Results do
        not depend on ``n_jobs``. Under ``joblib.parallel_config(backend="dask")``
        the work runs on a dask.distributed cluster.""",
    "memory": """memory : str, pathlib.Path, joblib.Memory or None, default=None
        Folder caching the expensive per-image computation (a
        :class:`joblib.Memory` stands for its ``location``). Keys are the image
        and mask contents and the settings, so repeated fits (cross-validation
        folds, grid-search candidates) compute each image once. Entries are JSON
        with a checksum, never pickles.""",
    "random_state": """random_state : int, RandomState instance or None, default=None
        Seed of the random draws. The same seed gives the same output with any
        ``n_jobs``; the caller's global torch and numpy random states are left
        untouched.""",
    "verbose": """verbose : bool or int, default=False
        Show a progress bar (tqdm) over subjects.""",
}


def fill_doc(obj):
    """Fill ``%(name)s`` placeholders of ``obj.__doc__`` from :data:`DOCDICT`.

    Parameters
    ----------
    obj : callable or class
        Object whose docstring holds the placeholders.

    Returns
    -------
    obj
        The same object, docstring filled.
    """
    if obj.__doc__:
        indented = {}
        for key, text in DOCDICT.items():
            indented[key] = text
        obj.__doc__ = obj.__doc__ % indented
    return obj
