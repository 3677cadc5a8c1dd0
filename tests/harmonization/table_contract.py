"""The scikit-learn contract on a subject table, shared by the harmonizer tests.

What ``check_estimator`` cannot check where the site is a column of the
table: ``fit`` returns the estimator with its parameters unchanged,
``transform`` leaves its state alone, a clone refitted gives the same output,
a pickled copy too, and the rows' order does not matter.
"""

import pickle
import warnings

import numpy as np
from sklearn.base import clone


def check_table_contract(estimator, X, y=None, *, ignore=()):
    """Fit ``estimator`` on ``(X, y)`` and check the contract; return its output.

    Parameters
    ----------
    estimator : estimator
        Unfitted; fitted in place.
    X : pandas.DataFrame
    y : array-like, default=None
    ignore : tuple of Warning subclasses, default=()
        Warnings of the fits to ignore (the others stay errors).

    Returns
    -------
    pandas.DataFrame
        ``estimator.transform(X)``.
    """
    def fit(est):
        with warnings.catch_warnings():
            for category in ignore:
                warnings.simplefilter("ignore", category)
            return est.fit(X, y)

    params = estimator.get_params()
    assert fit(estimator) is estimator
    assert estimator.get_params() == params
    out = estimator.transform(X)
    state = set(vars(estimator))
    estimator.transform(X)
    assert set(vars(estimator)) == state
    # reproducible (seeded), picklable, row order free
    again = fit(clone(estimator)).transform(X)
    np.testing.assert_array_equal(again.to_numpy(), out.to_numpy())
    restored = pickle.loads(pickle.dumps(estimator))
    np.testing.assert_array_equal(restored.transform(X).to_numpy(), out.to_numpy())
    perm = np.random.RandomState(0).permutation(len(X))
    np.testing.assert_allclose(estimator.transform(X.iloc[perm]).to_numpy(),
                               out.iloc[perm].to_numpy(), rtol=0, atol=1e-12)
    return out
