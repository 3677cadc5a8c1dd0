"""Import an optional dependency, or say which extra installs it.

The optional pieces of sklearn-medprep are pip extras (``torchio``, ``plot``,
``skorch``, ``dask``, ``lbp``, ``parquet``, ``dicom``, ``neuroharmonize``); a
feature that needs one calls :func:`import_optional` at the point of use, so the
error names the feature and the exact command that fixes it.
"""

import importlib

__all__ = ["import_optional"]

# import name -> (distribution, extra)
OPTIONAL = {
    "torch": ("torch", "torchio"),
    "torchio": ("torchio", "torchio"),
    "matplotlib": ("matplotlib", "plot"),
    "skorch": ("skorch", "skorch"),
    "dask": ("dask[distributed]", "dask"),
    "distributed": ("dask[distributed]", "dask"),
    "skimage": ("scikit-image", "lbp"),
    "neuroHarmonize": ("neuroHarmonize", "neuroharmonize"),
    "pydicom": ("pydicom", "dicom"),
    "dicognito": ("dicognito", "dicom"),
    "pyarrow": ("pyarrow", "parquet"),
}


def import_optional(name, feature):
    """Import the optional module ``name``, or raise an ImportError naming its extra.

    Parameters
    ----------
    name : str
        Import name of the module (a key of ``OPTIONAL``, or a submodule of one,
        e.g. ``"matplotlib.pyplot"``).
    feature : str
        What needs it, for the message (e.g. ``"plot_harmonization"``).

    Returns
    -------
    module
        The imported module.

    Raises
    ------
    ImportError
        When the module is not installed; the message gives the
        ``pip install "sklearn-medprep[extra]"`` command.

    Examples
    --------
    >>> from sklearn_medprep.utils._optional import import_optional
    >>> import_optional("matplotlib", "plot_harmonization").__name__
    'matplotlib'
    """
    top = name.split(".")[0]
    distribution, extra = OPTIONAL[top]
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != top:
            raise  # the module is there but one of its own imports failed
        raise ImportError(
            f"{feature} needs {distribution}, which is not installed: "
            f'pip install "sklearn-medprep[{extra}]"'
        ) from exc
