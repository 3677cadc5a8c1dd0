"""Site-aware cross-validation splitters for harmonization without leakage."""

import numbers

import numpy as np
import pandas as pd
from sklearn.model_selection import BaseCrossValidator
from sklearn.model_selection._split import GroupsConsumerMixin, _build_repr
from sklearn.utils import check_array, check_random_state

from ..exceptions import SubjectTableError, plain
from ..utils._docstrings import fill_doc

__all__ = ["SiteStratifiedKFold", "LeaveOneSiteOut"]


def _sites(X, groups, site):
    """Site of each row: ``groups`` when given, else the ``site`` column of X."""
    if groups is not None:
        groups = check_array(
            groups,
            input_name="groups",
            ensure_2d=False,
            dtype=None,
            ensure_all_finite=False,
        )
        if groups.ndim != 1:
            raise ValueError(f"groups must be 1-D, got shape {groups.shape}.")
        if X is not None and hasattr(X, "shape") and X.shape[0] != groups.shape[0]:
            raise ValueError(
                f"groups has {groups.shape[0]} values for {X.shape[0]} rows of X."
            )
        values = groups
    elif isinstance(X, pd.DataFrame):
        if site not in X.columns:
            raise SubjectTableError(
                "no site column in X and groups is None", column=site
            )
        values = X[site].to_numpy()
    else:
        raise ValueError(
            "The sites are read from groups or, when groups is None, from the "
            f"column {site!r} of a DataFrame X; got groups=None and X of type "
            f"{type(X).__name__}."
        )
    missing = pd.isna(values)
    if missing.any():
        position = int(np.flatnonzero(missing)[0])
        row = X.index[position] if isinstance(X, pd.DataFrame) else position
        raise SubjectTableError("site is missing", row=row, column=site)
    return values


class _SiteSplitter(GroupsConsumerMixin, BaseCrossValidator):
    def __repr__(self):
        return _build_repr(self)


@fill_doc
class SiteStratifiedKFold(_SiteSplitter):
    """K-fold that keeps every site in every training fold.

    Each site's rows are dealt over the ``n_splits`` test folds in turn, so
    every test fold holds about ``1 / n_splits`` of every site (and, with
    ``stratify_y=True``, of every site x class cell) and every training fold
    holds the rest of every site: what ComBat needs to harmonize a test fold with
    parameters learned on its training fold only.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds (at least 2).
    %(site)s
        Used when ``groups`` is None; ``groups`` (routed under metadata routing)
        takes precedence.
    stratify_y : bool, default=False
        Also balance the classes of ``y`` within each site.
    shuffle : bool, default=False
        Shuffle each site's rows before dealing them.
    random_state : int, RandomState instance or None, default=None
        Seed of the shuffle.

    Raises
    ------
    SubjectTableError
        When a site has fewer than ``n_splits`` rows or would leave fewer than 2
        rows in a training fold (the message names the site).

    See Also
    --------
    LeaveOneSiteOut : Each site is the test fold once.

    Examples
    --------
    >>> from sklearn_medprep.datasets import make_multisite_features
    >>> from sklearn_medprep.model_selection import SiteStratifiedKFold
    >>> df = make_multisite_features(n_subjects=40, n_features=3, random_state=0)
    >>> cv = SiteStratifiedKFold(n_splits=4)
    >>> train, test = next(cv.split(df))
    >>> sorted(df["site"].iloc[train].unique()) == sorted(df["site"].unique())
    True
    >>> cv.get_n_splits()
    4
    """

    def __init__(
        self,
        n_splits=5,
        site="site",
        stratify_y=False,
        shuffle=False,
        random_state=None,
    ):
        self.n_splits = n_splits
        self.site = site
        self.stratify_y = stratify_y
        self.shuffle = shuffle
        self.random_state = random_state

    def _check_params(self):
        if not isinstance(self.n_splits, numbers.Integral) or self.n_splits < 2:
            raise ValueError(
                f"n_splits must be an integer >= 2, got {self.n_splits!r}."
            )
        if not self.shuffle and self.random_state is not None:
            raise ValueError(
                "Setting a random_state has no effect since shuffle is False."
            )

    def get_n_splits(self, X=None, y=None, groups=None):
        """Number of splits.

        Parameters
        ----------
        X, y, groups : object
            Ignored.

        Returns
        -------
        n_splits : int
        """
        return self.n_splits

    def split(self, X, y=None, groups=None):
        """Generate train/test indices.

        Parameters
        ----------
        X : pandas.DataFrame or array-like of shape (n_samples, n_columns)
            Data; its ``site`` column gives the sites when ``groups`` is None.
        y : array-like of shape (n_samples,), default=None
            Classes, required when ``stratify_y=True``.
        groups : array-like of shape (n_samples,), default=None
            Site of each row.

        Yields
        ------
        train, test : ndarray of int
        """
        return super().split(X, y, groups)

    def _iter_test_indices(self, X=None, y=None, groups=None):
        self._check_params()
        sites = _sites(X, groups, self.site)
        k = self.n_splits
        if self.stratify_y:
            if y is None:
                raise ValueError("stratify_y=True needs y.")
            y = check_array(y, input_name="y", ensure_2d=False, dtype=None)
        rng = check_random_state(self.random_state) if self.shuffle else None
        labels, codes, counts = np.unique(
            sites, return_inverse=True, return_counts=True
        )
        for label, count in zip(labels, counts):
            if count < k or count - int(np.ceil(count / k)) < 2:
                raise SubjectTableError(
                    f"site {plain(label)!r} has {plain(count)} subject(s), too few for "
                    f"n_splits={k}: each test fold needs one and each training fold "
                    "at least 2 of every site",
                    column=self.site,
                )
        if self.stratify_y:
            _, classes = np.unique(y, return_inverse=True)
        else:
            classes = np.zeros(len(sites), dtype=int)
        fold_of = _deal_sites(codes, labels.size, classes, k, rng)
        for fold in range(k):
            yield np.flatnonzero(fold_of == fold)


def _deal_sites(codes, n_sites, classes, k, rng):
    """Assign each row a fold: balanced within every site (x class) cell.

    Each site's rows, ordered by class, are dealt round robin over the folds,
    so every fold gets its share of every site and of every site x class cell
    (to within one). Only the fold where a site's dealing starts is free; it
    is chosen, site after site, to balance the classes (then the fold sizes)
    over the whole split, so that the minority class of sites with the same
    layout is not sent to the same fold every time.
    """
    n_classes = int(classes.max()) + 1 if classes.size else 1
    counts = np.zeros((k, n_classes), dtype=int)
    fold_of = np.empty(codes.size, dtype=int)
    for site in range(n_sites):
        rows = np.flatnonzero(codes == site)
        if rng is not None:
            rows = rows[rng.permutation(rows.size)]
        rows = rows[np.argsort(classes[rows], kind="stable")]
        best = None
        for start in range(k):
            folds = (start + np.arange(rows.size)) % k
            trial = counts.copy()
            np.add.at(trial, (folds, classes[rows]), 1)
            sizes = trial.sum(axis=1)
            cost = (
                int((trial.max(axis=0) - trial.min(axis=0)).sum()),
                int(sizes.max() - sizes.min()),
            )
            if best is None or cost < best[0]:
                best = (cost, folds, trial)
        fold_of[rows] = best[1]
        counts = best[2]
    return fold_of


@fill_doc
class LeaveOneSiteOut(_SiteSplitter):
    """Each site is the test fold once; the others train.

    The test site is unseen by the training fold: a harmonizer in the pipeline
    needs an explicit policy for it (``ComBatHarmonizer(unseen_site=...)``).

    Parameters
    ----------
    %(site)s
        Used when ``groups`` is None.

    Examples
    --------
    >>> from sklearn_medprep.datasets import make_multisite_features
    >>> from sklearn_medprep.model_selection import LeaveOneSiteOut
    >>> df = make_multisite_features(n_subjects=30, n_features=2, random_state=0)
    >>> cv = LeaveOneSiteOut()
    >>> cv.get_n_splits(df)
    3
    >>> [sorted(df["site"].iloc[test].unique()) for _, test in cv.split(df)]
    [['site_0'], ['site_1'], ['site_2']]
    """

    def __init__(self, site="site"):
        self.site = site

    def get_n_splits(self, X=None, y=None, groups=None):
        """Number of sites.

        Parameters
        ----------
        X : pandas.DataFrame, default=None
            Data with the site column (when ``groups`` is None).
        y : object
            Ignored.
        groups : array-like, default=None
            Site of each row.

        Returns
        -------
        n_splits : int
        """
        return np.unique(_sites(X, groups, self.site)).size

    def split(self, X, y=None, groups=None):
        """Generate train/test indices, one split per site.

        Parameters
        ----------
        X : pandas.DataFrame or array-like
            Data; its ``site`` column gives the sites when ``groups`` is None.
        y : object
            Ignored.
        groups : array-like of shape (n_samples,), default=None
            Site of each row.

        Yields
        ------
        train, test : ndarray of int
        """
        return super().split(X, y, groups)

    def _iter_test_masks(self, X=None, y=None, groups=None):
        sites = _sites(X, groups, self.site)
        labels = np.unique(sites)
        if labels.size < 2:
            raise ValueError(
                f"LeaveOneSiteOut needs at least 2 sites, got {plain(labels)}."
            )
        for label in labels:
            yield sites == label
