"""sklearn-medprep: prepare medical images for machine learning, the scikit-learn way.

Every step is a fit/transform estimator of the *subject table* (one row per
skorch model compose in a :class:`~sklearn.pipeline.Pipeline`, cross-validate
without leakage with site-aware splitters, and persist with joblib.
"""

from ._table import load_image, read_manifest, validate_table
from ._version import __version__

# estimators (one import line per module; keep sorted)

__all__ = [
    "__version__",
    "load_image",
    "read_manifest",
    "validate_table",
]
