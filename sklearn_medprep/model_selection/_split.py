"""Site-aware cross-validation splitters for harmonization without leakage."""

import numbers
import warnings

import numpy as np
import pandas as pd
from sklearn.model_selection import BaseCrossValidator
from sklearn.model_selection._split import GroupsConsumerMixin, _build_repr
from sklearn.utils import check_array, check_random_state
from sklearn.utils.validation import indexable

from ..exceptions import SubjectOverlapWarning, SubjectTableError, plain
from ..utils._docstrings import fill_doc
from ..utils._survival import stratification_labels
from ._subjects import (
    site_of_rows,
    straddlers,
    subject_hint,
    subject_of_rows,
    warn_subject_overlap,
)

__all__ = ["SiteStratifiedKFold", "LeaveOneSiteOut"]


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
        Also balance the classes of ``y`` within each site (the event
        indicator of a survival ``y``, scikit-survival's structured array).
    shuffle : bool, default=False
        Shuffle each site's rows before dealing them.
    random_state : int, RandomState instance or None, default=None
        Seed of the shuffle.
    subject : str or None, default="subject"
        Column of ``X`` naming the subject of each row (ROIs, lesions, visits),
        read only to check the folds: rows are dealt one by one, so the rows of
        a subject can land in several test folds. When the column (or, without
        it, a repeated index of ``X``) shows such a subject, ``split`` issues a
        :class:`~sklearn_medprep.exceptions.SubjectOverlapWarning` naming one
        and counting them. With several rows per subject use
        :class:`SiteStratifiedGroupKFold` instead. None: read the index only.

    Raises
    ------
    SubjectTableError
        When a site has fewer than ``n_splits`` rows or would leave fewer than 2
        rows in a training fold (the message names the site).

    Warns
    -----
    SubjectOverlapWarning
        When rows of one subject (by the ``subject`` column, else a repeated
        index) are put in the training and the test rows of a split.

    See Also
    --------
    SiteStratifiedGroupKFold : The same, keeping each subject's rows together.
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
        subject="subject",
    ):
        self.n_splits = n_splits
        self.site = site
        self.stratify_y = stratify_y
        self.shuffle = shuffle
        self.random_state = random_state
        self.subject = subject

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
        check_n_splits(self)
        sites = site_of_rows(X, groups, self.site)
        k = self.n_splits
        if self.stratify_y:
            if y is None:
                raise ValueError("stratify_y=True needs y.")
            y = _stratify_on(y)
        rng = check_random_state(self.random_state) if self.shuffle else None
        labels, codes, counts = np.unique(
            sites, return_inverse=True, return_counts=True
        )
        check_site_sizes(labels, counts, k, self.site, "row(s)")
        if self.stratify_y:
            _, classes = np.unique(y, return_inverse=True)
        else:
            classes = np.zeros(len(sites), dtype=int)
        fold_of = deal_sites(codes, labels.size, classes, k, rng)
        ids, source = subject_hint(X, self.subject)
        if ids is not None:
            warn_subject_overlap(type(self).__name__, fold_of, ids, source)
        for fold in range(k):
            yield np.flatnonzero(fold_of == fold)


def _stratify_on(y):
    """Classes ``stratify_y`` balances: ``y``, or the event of a survival ``y``.

    A survival target (scikit-survival's structured array of event indicator
    and time) is stratified on its event indicator: every fold gets the
    site's share of events and of censored rows.
    """
    event = stratification_labels(y)
    if event is not None:
        return event
    return check_array(y, input_name="y", ensure_2d=False, dtype=None)


def check_n_splits(cv):
    """The checks of ``n_splits``, ``shuffle`` and ``random_state`` at split time."""
    if not isinstance(cv.n_splits, numbers.Integral) or cv.n_splits < 2:
        raise ValueError(f"n_splits must be an integer >= 2, got {cv.n_splits!r}.")
    if not cv.shuffle and cv.random_state is not None:
        raise ValueError("Setting a random_state has no effect since shuffle is False.")


def check_site_sizes(labels, counts, k, column, unit, note=""):
    """Refuse a site with too few units (rows, subjects) for ``k`` folds."""
    if not len(labels):
        raise ValueError("Cannot split a table with no rows.")
    for label, count in zip(labels, counts):
        if count < k or count - int(np.ceil(count / k)) < 2:
            raise SubjectTableError(
                f"site {plain(label)!r} has {plain(count)} {unit}{note}, too few "
                f"for n_splits={k}: each test fold needs one and each training "
                "fold at least 2 of every site",
                column=column,
            )


def deal_sites(codes, n_sites, classes, k, rng, weights=None):
    """Assign each unit (row, subject) a fold: balanced within every site x class.

    Each site's units, ordered by class, are dealt round robin over the folds,
    so every fold gets its share of every site and of every site x class cell
    (to within one). Only the fold where a site's dealing starts is free; it
    is chosen, site after site, to balance the classes (then the fold sizes,
    counted in ``weights``: rows per unit, default 1) over the whole split, so
    that the minority class of sites with the same layout is not sent to the
    same fold every time.
    """
    if weights is None:
        weights = np.ones(codes.size, dtype=int)
    n_classes = int(classes.max()) + 1 if classes.size else 1
    counts = np.zeros((k, n_classes), dtype=int)
    sizes = np.zeros(k, dtype=int)
    fold_of = np.empty(codes.size, dtype=int)
    for site in range(n_sites):
        units = np.flatnonzero(codes == site)
        if rng is not None:
            units = units[rng.permutation(units.size)]
        units = units[np.argsort(classes[units], kind="stable")]
        best = None
        for start in range(k):
            folds = (start + np.arange(units.size)) % k
            trial = counts.copy()
            np.add.at(trial, (folds, classes[units]), 1)
            trial_sizes = sizes + np.bincount(folds, weights[units], minlength=k)
            cost = (
                int((trial.max(axis=0) - trial.min(axis=0)).sum()),
                int(trial_sizes.max() - trial_sizes.min()),
            )
            if best is None or cost < best[0]:
                best = (cost, folds, trial, trial_sizes)
        fold_of[units] = best[1]
        counts, sizes = best[2], best[3].astype(int)
    return fold_of


@fill_doc
class LeaveOneSiteOut(_SiteSplitter):
    """Each site is the test fold once; the others train.

    The test site is unseen by the training fold: a harmonizer in the pipeline
    needs an explicit policy for it (``ComBatHarmonizer(unseen_site=...)``).

    A subject with rows at two sites (a travelling subject) would have rows on
    both sides of a split. When the subjects are known (the ``subject``
    column of ``X``, or ``subjects=`` passed to ``split``) this is an error
    naming the subject; when they are only hinted at by a repeated index of
    ``X``, a :class:`~sklearn_medprep.exceptions.SubjectOverlapWarning`.

    Parameters
    ----------
    %(site)s
        Used when ``groups`` is None; ``groups`` (routed under metadata routing)
        takes precedence, and means the site, as in 0.1.
    subject : str or None, default="subject"
        Column of ``X`` naming the subject of each row, used (when present) to
        refuse a subject with rows at two sites. Routed ``subjects=`` take
        precedence. None: no column is read (a repeated index still warns).

    See Also
    --------
    SiteStratifiedGroupKFold : Site-stratified folds that keep subjects whole.
    SiteStratifiedKFold : Every site in every training fold.

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

    # subject ids are routed as ``subjects`` (``groups`` are the sites)
    __metadata_request__split = {"subjects": True}

    def __init__(self, site="site", subject="subject"):
        self.site = site
        self.subject = subject

    def get_n_splits(self, X=None, y=None, groups=None, *, subjects=None):
        """Number of sites.

        Parameters
        ----------
        X : pandas.DataFrame, default=None
            Data with the site column (when ``groups`` is None).
        y : object
            Ignored.
        groups : array-like, default=None
            Site of each row.
        subjects : object
            Ignored.

        Returns
        -------
        n_splits : int
        """
        return np.unique(site_of_rows(X, groups, self.site)).size

    def split(self, X, y=None, groups=None, *, subjects=None):
        """Generate train/test indices, one split per site.

        Parameters
        ----------
        X : pandas.DataFrame or array-like
            Data; its ``site`` column gives the sites when ``groups`` is None,
            its ``subject`` column the subjects when ``subjects`` is None.
        y : object
            Ignored.
        groups : array-like of shape (n_samples,), default=None
            Site of each row.
        subjects : array-like of shape (n_samples,), default=None
            Subject of each row (routed as ``subjects`` under metadata routing).

        Yields
        ------
        train, test : ndarray of int

        Raises
        ------
        SubjectTableError
            When a known subject has rows at two sites (naming it).
        """
        X, y, groups = indexable(X, y, groups)
        sites = site_of_rows(X, groups, self.site)
        labels, codes = np.unique(sites, return_inverse=True)
        if labels.size < 2:
            raise ValueError(
                f"LeaveOneSiteOut needs at least 2 sites, got {plain(labels)}."
            )
        self._check_travellers(X, subjects, labels, codes)
        indices = np.arange(codes.size)
        for site in range(labels.size):
            yield indices[codes != site], indices[codes == site]

    def _check_travellers(self, X, subjects, labels, codes):
        # known subjects (an argument, the column) refuse; a repeated index warns
        known = True
        if subjects is not None:
            ids = subject_of_rows(X, subjects, None, name="subjects")
            column, source = None, "subjects"
        elif (
            isinstance(X, pd.DataFrame)
            and self.subject is not None
            and self.subject in X.columns
        ):
            advice = (
                f"; LeaveOneSiteOut reads the {self.subject!r} column to keep each "
                "subject at one site: fill it, or set subject=None to split by "
                "site without it"
            )
            ids = subject_of_rows(X, None, self.subject, advice=advice)
            column, source = self.subject, f"the {self.subject!r} column"
        else:
            ids, source = subject_hint(X, None)
            column, known = None, False
            if ids is None:
                return
        found = straddlers(codes, ids)
        if not found.n_straddling:
            return
        example = found.example
        names = [repr(plain(labels[w])) for w in found.example_folds]
        at = ", ".join(names[:-1]) + " and " + names[-1]
        more = (
            f" ({found.n_straddling} such subjects, read from {source})"
            if found.n_straddling > 1
            else f" (read from {source})"
        )
        message = (
            f"subject {example!r} has rows at sites {at}{more}: leaving one site "
            "out puts its rows in the training and the test rows of a split"
        )
        if not known:
            warnings.warn(
                f"LeaveOneSiteOut: {message}. If the index names subjects, pass "
                "subjects= or a subject column to refuse this; if it does not "
                "(labels repeated by pd.concat), reset it.",
                SubjectOverlapWarning,
                stacklevel=3,
            )
            return
        first = int(np.flatnonzero(pd.Series(ids, dtype=object) == example)[0])
        raise SubjectTableError(
            message + ". Keep the rows of one site per subject, or split with "
            "SiteStratifiedGroupKFold, which keeps each subject whole",
            row=X.index[first] if isinstance(X, pd.DataFrame) else first,
            column=column,
        )
