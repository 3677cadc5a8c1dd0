"""CorrelationSelector: drop features redundant with a better-ranked one, fold-safe.

Radiomics studies drop features correlated above a threshold (often
``|r| > 0.9``) with a better-ranked feature before modelling. Done on the whole
cohort before cross-validation, the test rows take part in choosing the
features: a leak. :class:`CorrelationSelector` learns the correlations and the
ranking in ``fit``, on the training rows it is given, so that inside a
:class:`~sklearn.pipeline.Pipeline` each fold chooses its own features.
"""

from numbers import Real

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.base import BaseEstimator, _fit_context
from sklearn.feature_selection import SelectorMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ..table._checks import check_fit_rows

__all__ = ["CorrelationSelector"]


def _correlations(X, method):
    """Return the (n_features, n_features) correlation matrix of the columns.

    Spearman: Pearson of the ranks (ties averaged). A constant column (its
    largest value equals its smallest) correlates 0 with every other column.
    """
    X = np.asarray(X, dtype=float)
    constant = X.max(axis=0) == X.min(axis=0) if len(X) else np.ones(X.shape[1], bool)
    if method == "spearman":
        X = rankdata(X, axis=0)
    centred = X - X.mean(axis=0)
    norm = np.sqrt(np.einsum("ij,ij->j", centred, centred))
    unit = np.divide(centred, norm, out=np.zeros_like(centred),
                     where=~constant & (norm > 0))
    r = unit.T @ unit
    np.clip(r, -1.0, 1.0, out=r)
    return r


def _target_vector(y, name):
    """``y`` as floats: numbers as they are, a two-class label as 0/1."""
    y = np.asarray(y)
    if y.ndim != 1:
        y = y.ravel() if y.ndim == 2 and y.shape[1] == 1 else None
    if y is None:
        raise ValueError(f"{name} with ranking='target' needs a one-column target")
    if np.issubdtype(y.dtype, np.number) or y.dtype == bool:
        y = y.astype(float)
    else:
        classes = pd.unique(pd.Series(y))
        if len(classes) != 2:
            raise ValueError(
                f"{name} with ranking='target' needs a numeric or two-class "
                f"target, got {len(classes)} classes of {y.dtype}"
            )
        y = (y == classes[1]).astype(float)
    if not np.isfinite(y).all():
        raise ValueError(f"{name} with ranking='target': the target holds NaN or "
                         "infinite values")
    return y


class CorrelationSelector(SelectorMixin, BaseEstimator):
    """Drop features correlated above a threshold with a better-ranked feature.

    ``fit`` ranks the features (on the training rows), then walks them from the
    best-ranked down and keeps a feature unless its absolute correlation with a
    feature already kept exceeds ``threshold``. The first-ranked feature is
    always kept. Everything (correlations, ranking) is learnt from the rows given
    to ``fit``: inside a :class:`~sklearn.pipeline.Pipeline` under
    cross-validation, from the training fold only. ``transform`` returns the kept
    columns of any rows.

    Parameters
    ----------
    threshold : float, default=0.9
        A feature is dropped when ``|r| > threshold`` with a kept feature.
    method : {"pearson", "spearman"}, default="pearson"
        Correlation coefficient (Spearman: Pearson of the ranks, ties averaged).
    ranking : {"variance", "target", "order"} or callable, default="variance"
        How "better-ranked" is decided, higher scores first (ties by column order):

        - ``"variance"``: the feature's variance on the training rows (scale
          dependent: on standardised features every score ties, and column order
          decides);
        - ``"target"``: the absolute correlation (``method``) of the feature with
          ``y`` on the training rows (univariate); ``y`` must be numeric or have
          two classes;
        - ``"order"``: column order, the first column best;
        - a callable ``ranking(X, y) -> scores`` (array of shape
          ``(n_features,)``, or a tuple whose first item is, as
          scikit-learn's ``score_func``), called on the training rows.

    Attributes
    ----------
    scores_ : ndarray of shape (n_features,)
        The ranking scores (``"order"``: ``-column position``).
    support_ : ndarray of bool of shape (n_features,)
        Kept features.
    redundant_with_ : dict
        Each dropped feature's name -> the name of the first-ranked kept feature
        it correlated with above the threshold.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features,)
        When ``X`` has string column names.

    Notes
    -----
    A constant column (on the training rows) has no defined correlation: it
    counts as correlated 0 with every feature, so it is kept (drop constant
    columns before with :class:`~sklearn.feature_selection.VarianceThreshold`).
    NaN or infinite cells are refused, naming the column and the row. ``fit``
    needs 2 rows at least.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from sklearn_medprep import CorrelationSelector
    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.normal(size=(2, 50))
    >>> X = pd.DataFrame({"a": a, "a_copy": 2 * a + 0.01 * b, "b": b})
    >>> selector = CorrelationSelector(threshold=0.9, ranking="order").fit(X)
    >>> selector.get_feature_names_out().tolist()
    ['a', 'b']
    >>> selector.redundant_with_
    {'a_copy': 'a'}
    """

    _parameter_constraints = {
        "threshold": [Interval(Real, 0, 1, closed="both")],
        "method": [StrOptions({"pearson", "spearman"})],
        "ranking": [StrOptions({"variance", "target", "order"}), callable],
    }

    def __init__(self, threshold=0.9, *, method="pearson", ranking="variance"):
        self.threshold = threshold
        self.method = method
        self.ranking = ranking

    def _names(self, n_features):
        names = getattr(self, "feature_names_in_", None)
        if names is None:
            return [f"x{i}" for i in range(n_features)]
        return [str(name) for name in names]

    def _check_finite(self, X, index):
        """Refuse NaN or infinite cells, naming the column and the row."""
        bad = ~np.isfinite(X)
        if not bad.any():
            return
        rows, columns = np.nonzero(bad)
        names = self._names(X.shape[1])
        where = sorted(set(columns.tolist()))
        row = rows[columns == where[0]][0]
        label = repr(index[row]) if index is not None else f"position {row}"
        raise ValueError(
            f"{type(self).__name__}: NaN or infinite values in column(s) "
            f"{[names[c] for c in where]} (first: column {names[where[0]]!r}, "
            f"row {label}); impute or drop them before selecting features"
        )

    def _scores(self, X, y):
        if self.ranking == "order":
            return -np.arange(X.shape[1], dtype=float)
        if self.ranking == "variance":
            return X.var(axis=0)
        if self.ranking == "target":
            if y is None:
                raise ValueError(f"{type(self).__name__} with ranking='target' "
                                 "needs y in fit")
            target = _target_vector(y, type(self).__name__)
            if len(target) != len(X):
                raise ValueError(f"{type(self).__name__}: y has {len(target)} rows, "
                                 f"X has {len(X)}")
            r = _correlations(np.column_stack([X, target]), self.method)
            return np.abs(r[:-1, -1])
        scores = self.ranking(X, y)
        if isinstance(scores, tuple):
            scores = scores[0]
        scores = np.asarray(scores, dtype=float)
        if scores.shape != (X.shape[1],) or not np.isfinite(scores).all():
            raise ValueError(
                f"{type(self).__name__}: the ranking callable must return "
                f"{X.shape[1]} finite scores (one per feature), got "
                f"shape {scores.shape}"
            )
        return scores

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Rank the features and keep those not redundant with a better one.

        Parameters
        ----------
        X : array-like or pandas.DataFrame of shape (n_samples, n_features)
            Training rows, numeric.
        y : array-like of shape (n_samples,), default=None
            Target; used by ``ranking="target"`` (and given to a callable).

        Returns
        -------
        self
        """
        index = getattr(X, "index", None)
        X = validate_data(self, X, ensure_all_finite=False, dtype=np.float64,
                          ensure_min_samples=0)
        check_fit_rows(X, estimator=self)
        self._check_finite(X, index)
        if len(X) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 rows to estimate "
                f"correlations, got {len(X)} sample"
            )
        self.scores_ = self._scores(X, y)
        r = np.abs(_correlations(X, self.method))
        order = np.argsort(-self.scores_, kind="stable")
        support = np.zeros(X.shape[1], dtype=bool)
        names = self._names(X.shape[1])
        kept, redundant = [], {}
        for feature in order:
            above = [k for k in kept if r[feature, k] > self.threshold]
            if above:
                redundant[names[feature]] = names[above[0]]
            else:
                kept.append(feature)
                support[feature] = True
        self.support_ = support
        self.redundant_with_ = redundant
        return self

    def transform(self, X):
        """Return the kept columns of ``X``.

        Parameters
        ----------
        X : array-like or pandas.DataFrame of shape (n_samples, n_features)

        Returns
        -------
        ndarray or pandas.DataFrame of shape (n_samples, n_kept)
            A DataFrame (index kept) with ``set_output(transform="pandas")``.
        """
        check_is_fitted(self)
        index = getattr(X, "index", None)
        X = validate_data(self, X, reset=False, ensure_all_finite=False,
                          ensure_min_samples=0, dtype="numeric")
        self._check_finite(X, index)
        return X[:, self.support_]

    def _get_support_mask(self):
        check_is_fitted(self)
        return self.support_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.target_tags.required = self.ranking == "target"
        return tags
