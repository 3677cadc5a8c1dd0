"""Site predictability with chance, a permutation interval and a verdict."""

import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.impute import SimpleImputer
from sklearn.linear_model import RidgeClassifier
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state

from ..exceptions import MedprepWarning
from ..model_selection import SiteStratifiedKFold
from ..table._checks import align_rows
from ._site_effects import _covariate_design, _site_and_features

__all__ = ["SitePredictability", "site_predictability"]

VERDICTS = ("site signal remains", "at chance", "below chance: over-correction")


class SitePredictability(float):
    """A site-predictability score that knows its chance level and null interval.

    A ``float`` (the mean balanced accuracy), so ``score > 0.6`` and
    ``f"{score:.3f}"`` work as with a number, carrying what is needed to read
    it. Returned by :func:`site_predictability`; pickles with its attributes.

    Attributes
    ----------
    chance : float
        Balanced accuracy of guessing: ``1 / n_sites`` of the scored rows
        (averaged over the outer folds with ``harmonizer=``).
    null_interval : tuple of float or None
        The permutation scores that a score must pass to differ from chance
        at 5 % on either side: with ``k = floor(0.05 * (n + 1))`` for ``n``
        permutations, the ``k``-th smallest and the ``k``-th largest (the
        smallest and largest of 20). A score above it has :attr:`p_value`
        at most 0.05, a score below it :attr:`p_value_below` at most 0.05.
        ``None`` without permutations.
    p_value : float or None
        One-sided permutation p-value that the site is predictable:
        ``(1 + #{permutation score >= score}) / (1 + n_permutations)``, as
        :func:`sklearn.model_selection.permutation_test_score` computes it.
    p_value_below : float or None
        The same for a score below chance:
        ``(1 + #{permutation score <= score}) / (1 + n_permutations)``.
    permutation_scores : numpy.ndarray
        The score with the site labels of the scored rows permuted, one per
        permutation (empty without permutations).
    verdict : str or None
        ``"site signal remains"`` (score above the interval), ``"at chance"``
        (inside it) or ``"below chance: over-correction"`` (below it);
        ``None`` without permutations.
    protocol : str
        How the rows were scored, in words.
    fold_scores : numpy.ndarray
        The score of each outer fold (one value without ``harmonizer=``).

    Examples
    --------
    >>> from sklearn_medprep.qc import SitePredictability
    >>> score = SitePredictability(0.2, chance=0.25, null_interval=(0.18, 0.31),
    ...                            verdict="at chance")
    >>> f"{score:.2f}", score < 0.5, score.verdict
    ('0.20', True, 'at chance')
    """

    def __new__(
        cls,
        value,
        *,
        chance=np.nan,
        null_interval=None,
        p_value=None,
        p_value_below=None,
        permutation_scores=(),
        verdict=None,
        protocol="",
        fold_scores=None,
    ):
        self = super().__new__(cls, value)
        self.chance = float(chance)
        self.null_interval = (
            None if null_interval is None else tuple(float(v) for v in null_interval)
        )
        self.p_value = None if p_value is None else float(p_value)
        self.p_value_below = None if p_value_below is None else float(p_value_below)
        self.permutation_scores = np.asarray(permutation_scores, dtype=float)
        self.verdict = verdict
        self.protocol = protocol
        self.fold_scores = np.atleast_1d(
            np.asarray(value if fold_scores is None else fold_scores, dtype=float)
        )
        return self

    def __reduce__(self):
        state = dict(self.__dict__)
        return (_restore, (float(self), state))

    __str__ = float.__repr__

    def summary(self):
        """One line: score, chance, interval, p-value and verdict."""
        text = f"{float(self):.3f} (chance {self.chance:.3f}"
        if self.null_interval is not None:
            low, high = self.null_interval
            text += (
                f", permuted-site interval {low:.3f}-{high:.3f}, "
                f"p = {self.p_value:.3g}): {self.verdict}"
            )
        elif self.p_value is not None:
            text += f", p = {self.p_value:.3g}; too few permutations for a verdict)"
        else:
            text += "; no permutations)"
        return text

    def __repr__(self):
        return f"SitePredictability({self.summary()}; {self.protocol})"


def _restore(value, state):
    return SitePredictability(value, **state)


def _null_interval(perm, alpha=0.05):
    """The k-th smallest and largest permutation scores, k = floor(alpha (n+1)).

    A score above the upper bound has a permutation p-value of at most
    ``alpha``, below the lower bound likewise; ``None`` when there are too few
    permutations for that (fewer than 19 at 5 %).
    """
    k = int(np.floor(alpha * (perm.size + 1)))
    if k < 1:
        return None
    ordered = np.sort(perm)
    return ordered[k - 1], ordered[perm.size - k]


def _verdict(score, interval):
    if interval is None:
        return None
    if score < interval[0]:
        return VERDICTS[2]
    if score > interval[1]:
        return VERDICTS[0]
    return VERDICTS[1]


def _scored_blocks(X, site, sites, features, covariates, cov_table, harmonizer, y,
                   outer_cv, random_state):
    """(values, sites) of each block of scored rows.

    Without a harmonizer one block: every row of ``X``. With one, a block per
    outer fold: the held-out rows, transformed by a clone fitted on the
    training rows only.
    """
    if harmonizer is None:
        values, _, _ = _site_and_features(X, sites, features)
        if covariates is not None:
            values = _with_design(values, cov_table, covariates)
        return [(values, sites)]
    if not isinstance(X, pd.DataFrame):
        raise TypeError("harmonizer= needs X as a pandas DataFrame (the raw table).")
    if isinstance(outer_cv, int):
        outer_cv = SiteStratifiedKFold(
            outer_cv, shuffle=True, random_state=random_state
        )
    y = None if y is None else np.asarray(y)
    site_name = site if isinstance(site, str) else None
    blocks = []
    for train, test in outer_cv.split(X, y, groups=sites):
        fitted = clone(harmonizer)
        if y is None:
            fitted.fit(X.iloc[train])
        else:
            fitted.fit(X.iloc[train], y[train])
        out = fitted.transform(X.iloc[test])
        if isinstance(out, pd.DataFrame):  # rows pair by label
            out = align_rows(
                out, X.index[test], what="harmonizer output", reference="X"
            )
        else:
            out = pd.DataFrame(np.asarray(out), index=X.index[test])
        names = features
        if names is None:
            drop = {site_name, *(covariates or ())}
            names = [
                c for c in _site_and_features(out, sites[test], None)[2]
                if c not in drop
            ]
        values, _, _ = _site_and_features(out, sites[test], names)
        if covariates is not None:  # as before harmonization, held-out rows
            values = _with_design(values, cov_table.iloc[test], covariates)
        blocks.append((values, sites[test]))
    return blocks


def _with_design(values, table, covariates):
    """The covariate design (NaN rows where a covariate is missing), then values."""
    design, complete = _covariate_design(table, covariates)
    design = np.where(complete[:, None], design, np.nan)
    return _Design(np.hstack([design, values]), design.shape[1])


class _Design(np.ndarray):
    """Design columns then features; ``n_design`` says where the features start."""

    def __new__(cls, array, n_design):
        self = np.asarray(array).view(cls)
        self.n_design = n_design
        return self


class _CovariateResiduals(TransformerMixin, BaseEstimator):
    """Residuals of the features on the covariates, the fit on training rows.

    The input holds the ``n_design`` design columns (intercept, covariates)
    then the features. ``fit`` solves ordinary least squares per feature on
    its non-missing rows with complete covariates; ``transform`` returns the
    features minus the fitted covariate part (NaN where a covariate is
    missing). Fitted inside the cross-validation, the adjustment never sees
    the rows it scores: adjusting all rows at once would centre the
    covariate groups on the scored rows, and where a covariate goes with the
    site that pushes held-out rows towards the wrong site.
    """

    def __init__(self, n_design=1):
        self.n_design = n_design

    def fit(self, Z, y=None):
        Z = np.asarray(Z, dtype=float)
        design, values = Z[:, : self.n_design], Z[:, self.n_design :]
        rows_used = ~np.isnan(values) & ~np.isnan(design).any(axis=1)[:, None]
        coef = np.zeros((self.n_design, values.shape[1]))
        patterns, inverse = np.unique(rows_used.T, axis=0, return_inverse=True)
        inverse = np.asarray(inverse).ravel()
        for k, rows in enumerate(patterns):
            cols = np.flatnonzero(inverse == k)
            if rows.any():
                coef[:, cols] = np.linalg.lstsq(
                    design[rows], values[np.ix_(rows, cols)], rcond=None
                )[0]
        self.coef_ = coef
        return self

    def transform(self, Z):
        Z = np.asarray(Z, dtype=float)
        design, values = Z[:, : self.n_design], Z[:, self.n_design :]
        return values - design @ self.coef_


def _covariate_table(X, covariates):
    """Covariates given as a DataFrame: the rows of ``X``, paired by label."""
    if len(covariates) != len(X):
        raise ValueError(
            f"covariates has {len(covariates)} rows, X has {len(X)}: one row of "
            "covariates per row of X."
        )
    index = X.index if isinstance(X, pd.DataFrame) else None
    return align_rows(covariates, index, what="covariates", reference="X")


def _inner_cv(cv, block_sites, random_state):
    if not isinstance(cv, int):
        return cv
    smallest = int(np.unique(block_sites, return_counts=True)[1].min())
    return StratifiedKFold(
        max(2, min(cv, smallest)), shuffle=True, random_state=random_state
    )


def site_predictability(
    X,
    site,
    features=None,
    *,
    covariates=None,
    cv=5,
    random_state=0,
    harmonizer=None,
    y=None,
    outer_cv=3,
    n_permutations=20,
    classifier=None,
):
    """How well the site is predicted from the features, against chance.

    A linear classifier (after mean imputation of NaN cells and
    standardization, learned on the training folds) predicts the site of each
    row; the score is the cross-validated balanced accuracy, reported beside
    its chance level (``1 / n_sites``) and the interval of the same score with
    the site labels of the scored rows permuted. A score above the interval
    means site signal remains; inside it, the site is not predictable; below
    it, rows are systematically assigned to the wrong site: over-correction,
    never success (a :class:`~sklearn_medprep.exceptions.MedprepWarning` says
    so).

    **Which rows to score.** Rows a harmonizer was fitted on say little about
    the site effect left, and can score below chance: ComBat sets each site's
    mean, over exactly those rows, to the common mean, so in cross-validation
    the site mean of the held-out part is minus that of the training part
    (scaled), and a classifier learns to send rows to the wrong site. On
    FCON1000 (``benchmarks/bench_target_protection.py``, chance 0.045), ComBat
    fitted on every row and scored on them gives 0.000 (flagged); the
    recommended pipeline's test rows pooled over five folds give 0.033
    (within the interval, so not flagged), while the same ComBat scored on
    rows it never saw leaves 0.184: no figure from fitted rows measures the
    site effect left. Pass the raw table and an
    unfitted ``harmonizer=`` instead: for each outer fold of a
    :class:`~sklearn_medprep.model_selection.SiteStratifiedKFold`
    (``outer_cv``), a clone is fitted on the training rows and transforms the
    held-out rows, and the site classifier is cross-validated (``cv``)
    *within* those held-out rows, which the harmonizer never saw. The score
    is the mean over outer folds (each permutation likewise). Pooling the
    held-out rows of all folds before scoring would not do: over all folds,
    each site's mean is again centred (each row's offset is its fold's mean
    minus the other folds' mean), and the pooled score falls below chance.

    What this protocol shows even without any true site effect: the
    harmonizer's estimation error of a site's location is shared by all its
    held-out rows, so they stay somewhat predictable (ABIDE with the sites
    permuted before ComBat: 0.146 with chance 0.059, see
    ``benchmarks/bench_combat.py --site-qc``). The permutation interval,
    which permutes the scored rows' labels after harmonization, does not
    include that floor: compare a score with it too.

    Parameters
    ----------
    X : pandas.DataFrame or array-like
        Features (and the site column when ``site`` is a name). With
        ``harmonizer=``: the table before harmonization, as the harmonizer
        takes it (with its site and covariate columns).
    site : str or array-like of shape (n_samples,)
        Site column or labels.
    features : list of str or None, default=None
        Columns to use (of the harmonizer's output with ``harmonizer=``);
        ``None`` takes the numeric columns other than the site and the
        covariates.
    covariates : list of str, pandas.DataFrame or None, default=None
        Columns of ``X`` (numeric, or categorical/string, one-hot encoded
        dropping the first level) to adjust for: every feature is replaced by
        its residuals from an ordinary least-squares fit on an intercept and
        the covariates (NaN cells, and rows with a missing covariate, left
        out per feature) before the site is predicted. The fit is part of the
        cross-validated model: learned on the classifier's training folds,
        applied to its test fold (adjusting every scored row at once would
        centre the covariate groups on those rows and, where a covariate goes
        with the site, push held-out rows towards the wrong site). It uses no
        site labels. Pass the covariates given to
        ComBat when they differ between sites: ComBat preserves their
        effects, so without the adjustment the site stays predictable through
        them (e.g. through age) and the harmonization looks worse than it is.
        ``None`` uses the raw features. A DataFrame holds the covariate
        columns themselves, one row per row of ``X`` (paired by index label
        when ``X`` is a DataFrame): use it for a covariate the harmonizer must
        not see (e.g. the target) or that a harmonized table lacks. With
        ``harmonizer=`` the covariates are the held-out rows' values before
        harmonization.
    cv : int or cross-validation generator, default=5
        The site classifier's cross-validation. An int is a shuffled
        ``StratifiedKFold`` by site with that many folds, at most the number
        of scored rows of the smallest site (at least 2).
    random_state : int, default=0
        Seed of the fold shuffles and of the permutations.
    harmonizer : estimator or None, default=None
        An unfitted harmonizer (e.g. :class:`ComBatHarmonizer`, or a
        ``Pipeline`` ending in a transformer), cloned and fitted per outer
        fold on the training rows; see above. ``None`` scores ``X`` as given.
    y : array-like of shape (n_samples,) or None, default=None
        Target passed to the harmonizer's ``fit`` (training rows only), e.g.
        for ComBat's ``protect_target``. Never used by the site classifier.
    outer_cv : int or cross-validation generator, default=3
        With ``harmonizer=``: the outer split. An int is a shuffled
        :class:`SiteStratifiedKFold` (every site in every training fold),
        split with ``groups`` = the site labels. Three folds leave each
        harmonizer two thirds of the rows and each held-out block enough rows
        per site for the inner ``cv``.
    n_permutations : int, default=20
        Permutations of the scored rows' site labels (within each outer fold
        with ``harmonizer=``), each re-running the classifier's
        cross-validation; ``0`` disables the interval, the p-value and the
        verdict. 20 keeps a call on FCON1000 (1075 rows, 218 features, 22
        sites) to about 5 CPU seconds, with or without ``harmonizer=`` (4.7
        and 5.2 s in one run of ``benchmarks/bench_combat.py --site-qc``,
        which prints them). With 20 the
        interval runs from the smallest to the largest permutation score (a
        score outside has a one-sided p-value of 1/21 < 0.05); fewer than 19
        give p-values but no interval and no verdict. With no site effect a
        score still falls outside on either side about one call in 21: read
        the p-values, and use 200 or more for a publication figure. The
        classifier runs with one BLAS thread (faster for these small fits).
    classifier : estimator or None, default=None
        The site classifier (cloned), fitted after imputation and
        standardization. ``None``: ``RidgeClassifier(class_weight="balanced")``
        (one-vs-rest least squares, classes weighted to balance), fast enough
        to be re-run under permutation. Versions before issue 20 used
        ``LogisticRegression(max_iter=1000)``; pass it to reproduce them (on
        FCON1000 it is 20-50x slower under permuted labels).

    Returns
    -------
    score : SitePredictability
        A ``float`` (mean balanced accuracy) with ``chance``,
        ``null_interval``, ``p_value``, ``permutation_scores``, ``verdict``,
        ``protocol`` and ``fold_scores``.

    Warns
    -----
    MedprepWarning
        When the score is below the permutation interval (over-correction).

    See Also
    --------
    site_effect_report : Per-feature site effect before and after.

    Examples
    --------
    >>> from sklearn_medprep import ComBatHarmonizer, site_predictability
    >>> from sklearn_medprep.datasets import make_multisite_features
    >>> df = make_multisite_features(n_subjects=90, n_features=5, site_effect=2,
    ...                              random_state=0).drop(columns=["y", "sex"])
    >>> raw = site_predictability(df.drop(columns="age"), "site")
    >>> raw > 0.6, raw.verdict
    (True, 'site signal remains')

    Scored on held-out rows only, the harmonizer fitted on the others:

    >>> after = site_predictability(
    ...     df, "site", harmonizer=ComBatHarmonizer(covariates=["age"]),
    ...     covariates=["age"])
    >>> bool(after < raw), round(after.chance, 3)
    (True, 0.333)
    """
    cov_table = X
    if isinstance(covariates, pd.DataFrame):
        cov_table = _covariate_table(X, covariates)
        covariates = list(covariates.columns)
    elif covariates is not None:
        covariates = [covariates] if isinstance(covariates, str) else list(covariates)
        if features is None and harmonizer is None:
            features = [
                c for c in _site_and_features(X, site, None)[2] if c not in covariates
            ]
    sites = _site_and_features(X, site, [])[1]
    blocks = _scored_blocks(
        X, site, sites, features, covariates, cov_table, harmonizer, y, outer_cv,
        random_state,
    )
    # sklearn's own dependency, imported where used (as harmonization does):
    # many small solves run faster on one BLAS thread than fighting for two
    from threadpoolctl import threadpool_limits

    rng = check_random_state(random_state)
    with threadpool_limits(1, user_api="blas"):
        fold_scores, null = _scores(
            classifier, blocks, cv, n_permutations, rng, random_state
        )
    chances = [1.0 / np.unique(block_sites).size for _, block_sites in blocks]
    value = float(np.mean(fold_scores))
    perm = np.mean(np.asarray(null, dtype=float).reshape(len(blocks), -1), axis=0)
    interval = p_value = p_below = None
    if n_permutations:
        p_value = (np.sum(perm >= value) + 1.0) / (n_permutations + 1.0)
        p_below = (np.sum(perm <= value) + 1.0) / (n_permutations + 1.0)
        interval = _null_interval(perm)
    if harmonizer is None:
        protocol = (
            f"{len(sites)} rows scored as given ({_cv_words(cv)}); rows a "
            "harmonizer was fitted on can score below chance"
        )
    else:
        protocol = (
            f"{type(harmonizer).__name__} fitted on the training rows of "
            f"{len(blocks)} outer folds, site classifier cross-validated "
            f"({_cv_words(cv)}) within each fold's held-out rows"
        )
    result = SitePredictability(
        value,
        chance=float(np.mean(chances)),
        null_interval=interval,
        p_value=p_value,
        p_value_below=p_below,
        permutation_scores=perm,
        verdict=_verdict(value, interval),
        protocol=protocol,
        fold_scores=fold_scores,
    )
    if result.verdict == VERDICTS[2]:
        warnings.warn(
            f"site predictability {result.summary()}: the scored rows are "
            "systematically assigned to the wrong site. Score rows the "
            "harmonizer was not fitted on (harmonizer=).",
            MedprepWarning,
            stacklevel=2,
        )
    return result


def _model(classifier, values):
    """Imputation, standardization and the classifier; covariates first."""
    steps = [
        SimpleImputer(),
        StandardScaler(),
        RidgeClassifier(class_weight="balanced")
        if classifier is None
        else clone(classifier),
    ]
    if isinstance(values, _Design):
        steps.insert(0, _CovariateResiduals(values.n_design))
    return make_pipeline(*steps)


def _scores(classifier, blocks, cv, n_permutations, rng, random_state):
    """Each block's score and its scores under permuted site labels."""
    fold_scores, null = [], []
    for values, block_sites in blocks:
        inner = _inner_cv(cv, block_sites, random_state)
        model = _model(classifier, values)
        values = np.asarray(values)

        def score(labels, values=values, inner=inner, model=model):
            return np.mean(
                cross_val_score(
                    model, values, labels, cv=inner, scoring="balanced_accuracy"
                )
            )

        fold_scores.append(score(block_sites))
        null.append(
            [score(block_sites[rng.permutation(len(block_sites))])
             for _ in range(n_permutations)]
        )
    return fold_scores, null


def _cv_words(cv):
    return f"{cv}-fold" if isinstance(cv, int) else type(cv).__name__
