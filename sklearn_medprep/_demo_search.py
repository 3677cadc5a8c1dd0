"""The demo's search, without refitting what the grid's candidates share.

``GridSearchCV`` fits every candidate on every fold; the demo's candidates
differ only in the classifier's ``C``, so each fold's steps before it would be
fitted, and each fold's held-out rows prepared, once per candidate.
:class:`_FoldFits` (``Pipeline(memory=...)``) and :func:`_roc_auc` (the
search's scorer) do each once per fold; the scores are those of separate fits.
"""

import hashlib
import pickle
import uuid
from collections import OrderedDict

import numpy as np

#: Fitted feature steps of the latest searches: token -> {rows key: result}.
_FITS = OrderedDict()
_MAX_SEARCHES = 4


class _FoldFits:
    """``Pipeline(memory=...)`` fitting each fold's feature steps once per search.

    ``GridSearchCV`` fits every candidate on every fold, and the demo's
    candidates differ only in the classifier's ``C``: without this, each fold's
    steps before the classifier (preprocessing, radiomics from the cache,
    ComBat, scaler) are fitted three times on the same rows with the same
    parameters. As ``Pipeline(memory=joblib.Memory(...))`` (the fitted steps
    and their output are shared, unchanged), but kept in the process's memory:
    writing them to disk costs more than refitting these small steps. Rows are
    identified by their (unique) index labels, which is valid within one
    search's ``fit``, where every table is a subset of the rows passed to it:
    each search gets a new object (token), and the fits of only the latest
    few searches are kept. Copies (``clone``, pickling to joblib workers) share
    the token; each worker process keeps its own fits. ``location`` is None, so
    that ``Pipeline`` hands over the step itself, not a clone of it, as without
    ``memory=``: on a miss the step is fitted in place.
    """

    location = None

    def __init__(self, token=None):
        self.token = uuid.uuid4().hex if token is None else token

    def __repr__(self):
        return f"_FoldFits({self.token!r})"

    def cache(self, func, ignore=None):
        def cached(transformer, X, y=None, *args, **kwargs):
            index = getattr(X, "index", None)
            if (
                index is None
                or not index.is_unique
                or _has_metadata(kwargs.get("params"))  # not part of the key
                or (y is not None and len(y) != len(X))
            ):
                return func(transformer, X, y, *args, **kwargs)
            key = (
                # the unfitted steps and their parameters (C pickle: several
                # times faster than joblib.hash; equal steps, equal bytes)
                hashlib.sha256(pickle.dumps(transformer, protocol=4)).digest(),
                _labels(index),
                _labels(X.columns),
                None if y is None else tuple(np.asarray(y).tolist()),
            )
            fits = _FITS.setdefault(self.token, {})
            _FITS.move_to_end(self.token)
            while len(_FITS) > _MAX_SEARCHES:
                _FITS.popitem(last=False)
            if key not in fits:
                fits[key] = func(transformer, X, y, *args, **kwargs)
                fits.setdefault("fitted", set()).add(id(fits[key][1]))
            return fits[key]

        return cached

    def transform(self, fitted, X):
        """``fitted.transform(X)``, once per fitted step and rows in the search.

        Only for a step this object fitted and still keeps (so that its
        ``id`` is not reused while the result is kept); otherwise, and for a
        table without unique index labels, the transform is computed.
        """
        fits = _FITS.get(self.token, {})
        index = getattr(X, "index", None)
        if id(fitted) not in fits.get("fitted", ()) or index is None or (
            not index.is_unique
        ):
            return fitted.transform(X)
        key = ("transform", id(fitted), _labels(index), _labels(X.columns))
        if key not in fits:
            fits[key] = fitted.transform(X)
        return fits[key]


def _roc_auc(estimator, X, y):
    """The ``"roc_auc"`` scorer of a two-step search candidate (see :func:`_search`).

    The candidates of a fold share their fitted ``prepare`` step, so the
    held-out rows are prepared once for all of them; the classifier's decision
    function is scored as ``"roc_auc"`` scores it, by the rank formula (the
    Mann-Whitney U over the product of the class sizes: the same value as
    :func:`sklearn.metrics.roc_auc_score`, without its input checks, which
    cost more than the rest of the score on these few rows).
    """
    from scipy.stats import rankdata

    prepare, classify = estimator[0], estimator[-1]
    if isinstance(estimator.memory, _FoldFits):
        prepared = estimator.memory.transform(prepare, X)
    else:
        prepared = prepare.transform(X)
    positive = np.asarray(y) == classify.classes_[-1]
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if not (n_pos and n_neg):
        raise ValueError(
            "Only one class present in y_true. ROC AUC score is not defined "
            "in that case."
        )
    ranks = rankdata(classify.decision_function(prepared))  # ties: mean rank
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _labels(index):
    """The labels of ``index`` as a tuple (``tolist`` first: iterating pandas
    3's Arrow-backed labels one by one is about 7x slower).
    """
    return tuple(index.tolist())


def _has_metadata(params):
    """Whether routed parameters (a dict of dicts, e.g. a ``Bunch``) hold any."""
    return any(
        _has_metadata(v) if isinstance(v, dict) else True
        for v in (params or {}).values()
    )
