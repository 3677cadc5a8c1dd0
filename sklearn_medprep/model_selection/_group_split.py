"""Site-stratified K-fold over subjects: several rows per subject, none leaking."""

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state
from sklearn.utils.validation import _num_samples, indexable

from ..exceptions import SubjectTableError
from ..utils._docstrings import fill_doc
from ._split import (
    _SiteSplitter,
    _stratify_on,
    check_n_splits,
    check_site_sizes,
    deal_sites,
)
from ._subjects import site_of_rows, subject_of_rows

__all__ = ["SiteStratifiedGroupKFold"]


@fill_doc
class SiteStratifiedGroupKFold(_SiteSplitter):
    """K-fold over subjects that keeps every site in every training fold.

    The splitter for tables with several rows per subject (one row per ROI from
    :func:`~sklearn_medprep.expand_labels`, per lesion, per visit). As in
    scikit-learn's :class:`~sklearn.model_selection.StratifiedGroupKFold`,
    ``groups`` are the subjects: all rows of a subject are in exactly one test
    fold. As in :class:`SiteStratifiedKFold`, each site's subjects are dealt
    over the ``n_splits`` test folds in turn, so every test fold holds
    ``n_site_subjects / n_splits`` of every site's subjects (rounded down or up)
    and every training fold holds the rest, at least 2 subjects of every site.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds (at least 2).
    %(site)s
        Used when ``sites`` is None; ``sites=`` passed to ``split`` (routed as
        ``sites`` under metadata routing, the name
        :class:`~sklearn_medprep.ComBatHarmonizer` reads) take precedence.
    stratify_y : bool, default=False
        Also balance the classes of ``y`` (the event indicator of a survival
        ``y``) within each site. A subject counts for
        its most frequent class (ties: the smallest), so subjects whose rows
        have several classes (lesions) balance only approximately.
    shuffle : bool, default=False
        Shuffle each site's subjects before dealing them.
    random_state : int, RandomState instance or None, default=None
        Seed of the shuffle.
    subject : str or None, default="subject"
        Column of ``X`` naming the subject of each row, used when ``groups`` is
        None (the column that ``expand_labels`` and ``RadiomicsExtractor`` write
        on one-row-per-ROI tables). None: the index of ``X`` names the subjects
        (a table of visits indexed by subject). A named column that ``X`` lacks
        is an error, never a silent split of rows.

    Raises
    ------
    SubjectTableError
        When a site has fewer than ``n_splits`` subjects or would leave fewer
        than 2 in a training fold (naming the site), when the subject column is
        absent, or when a site or subject is missing (naming the row).

    See Also
    --------
    SiteStratifiedKFold : The same over rows, for one row per subject.
    LeaveOneSiteOut : Each site is the test fold once.
    subject_overlap : Count the subjects a splitter puts on both sides.

    Notes
    -----
    A subject with rows at several sites (a travelling subject) stays whole: it
    is dealt with the site holding most of its rows (ties: the first site in
    sorted order) and its rows at the other sites follow it into the same test
    fold. Those other sites' shares can then be off by one subject per
    traveller, and with ``stratify_y=True`` the traveller counts in the class
    balance of its dealing site only.

    With one row per subject (``groups`` all distinct) the folds are those of
    :class:`SiteStratifiedKFold` with the same parameters.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from sklearn_medprep.model_selection import SiteStratifiedGroupKFold
    >>> subjects = [f"s{i:02d}" for i in range(12)]
    >>> X = pd.DataFrame({
    ...     "subject": np.repeat(subjects, 3),           # 3 ROIs per subject
    ...     "site": np.repeat(["A", "B", "C"], 12),
    ...     "f": np.arange(36.0),
    ... })
    >>> cv = SiteStratifiedGroupKFold(n_splits=4)
    >>> for train, test in cv.split(X):
    ...     print(sorted(X["subject"].iloc[test].unique()))
    ['s00', 's04', 's08']
    ['s01', 's05', 's09']
    ['s02', 's06', 's10']
    ['s03', 's07', 's11']
    """

    # ``groups`` are the subjects; the sites are routed as ``sites``
    __metadata_request__split = {"sites": True}

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

    def get_n_splits(self, X=None, y=None, groups=None, *, sites=None):
        """Number of splits.

        Parameters
        ----------
        X, y, groups, sites : object
            Ignored.

        Returns
        -------
        n_splits : int
        """
        return self.n_splits

    def split(self, X, y=None, groups=None, *, sites=None):
        """Generate train/test indices.

        Parameters
        ----------
        X : pandas.DataFrame or array-like of shape (n_samples, n_columns)
            Data; its ``site`` column gives the sites when ``sites`` is None and
            its ``subject`` column the subjects when ``groups`` is None.
        y : array-like of shape (n_samples,), default=None
            Classes, required when ``stratify_y=True``.
        groups : array-like of shape (n_samples,), default=None
            Subject of each row.
        sites : array-like of shape (n_samples,), default=None
            Site of each row.

        Yields
        ------
        train, test : ndarray of int
        """
        X, y = indexable(X, y)  # groups and sites: checked naming them
        fold_of = self._fold_of(X, y, groups, sites)
        indices = np.arange(_num_samples(X))
        for fold in range(self.n_splits):
            yield indices[fold_of != fold], indices[fold_of == fold]

    def _fold_of(self, X, y, groups, sites):
        """Test fold of each row: subjects dealt site by site."""
        check_n_splits(self)
        k = self.n_splits
        site_values = site_of_rows(X, sites, self.site, name="sites")
        if not len(site_values):
            raise ValueError("Cannot split a table with no rows.")
        subject_values = subject_of_rows(
            X, groups, self.subject, owner=type(self).__name__
        )
        subject_codes, subjects = pd.factorize(pd.Series(subject_values, dtype=object))
        site_labels, site_codes = np.unique(site_values, return_inverse=True)
        # rows of each subject at each site; a subject is dealt with its home site
        rows = np.zeros((len(subjects), site_labels.size), dtype=int)
        np.add.at(rows, (subject_codes, site_codes), 1)
        home = rows.argmax(axis=1)
        if self.stratify_y:
            if y is None:
                raise ValueError("stratify_y=True needs y.")
            y = _stratify_on(y)
            _, y_codes = np.unique(y, return_inverse=True)
            per_class = np.zeros((rows.shape[0], y_codes.max() + 1), dtype=int)
            np.add.at(per_class, (subject_codes, y_codes), 1)
            classes = per_class.argmax(axis=1)
        else:
            classes = np.zeros(rows.shape[0], dtype=int)
        if groups is not None and (rows.sum(axis=0) == rows.max(axis=0)).all():
            raise SubjectTableError(
                f"each site holds the rows of one group only ({len(subjects)} "
                f"groups, {site_labels.size} sites): groups look like sites. "
                f"{type(self).__name__}'s groups are the subjects (as in "
                "StratifiedGroupKFold); the sites come from the site column or "
                "sites=",
                column=self.site,
            )
        n_travelling = int(((rows > 0).sum(axis=1) > 1).sum())
        note = (
            f" ({n_travelling} travelling subject(s) count at the site holding "
            "most of their rows)"
            if n_travelling
            else ""
        )
        check_site_sizes(
            site_labels,
            np.bincount(home, minlength=site_labels.size),
            k,
            self.site,
            "subject(s)",
            note,
        )
        rng = check_random_state(self.random_state) if self.shuffle else None
        fold_of_subject = deal_sites(
            home, site_labels.size, classes, k, rng, weights=rows.sum(axis=1)
        )
        return fold_of_subject[subject_codes]
