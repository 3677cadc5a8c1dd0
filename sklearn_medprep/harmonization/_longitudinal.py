"""Longitudinal ComBat (repeated visits of a subject), as a leak-free transformer."""

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype
from sklearn.base import (
    BaseEstimator,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import (
    _check_feature_names,
    _check_feature_names_in,
    _check_n_features,
    check_is_fitted,
)

from ..exceptions import SubjectTableError, plain
from ..utils._tags import subject_table_input_tags
from . import _design as design
from ._eb import EBInput, EBOptions, adjustments
from ._mixed import fit_mixed_models

__all__ = ["LongitudinalComBatHarmonizer"]


class LongitudinalComBatHarmonizer(TransformerMixin, BaseEstimator):
    """Remove site effects from repeated visits with longitudinal ComBat.

    ComBat treats every row as an independent subject: with repeated visits
    (longitudinal studies, test-retest) the site estimates lean towards the
    subjects with many visits and the within-subject structure is ignored.
    Longitudinal ComBat (Beer et al. 2020, R package longCombat) fits, per
    feature, a linear mixed model with the covariates and site indicators as
    fixed effects and a random intercept per subject (REML, statsmodels
    ``MixedLM``). The data are standardized by the fitted mean (grand mean,
    covariate effects and the subject's random intercept) and the residual
    standard deviation of the mixed model; each site's location and scale are
    estimated and shrunk by empirical Bayes (the same step as
    :class:`ComBatHarmonizer`), removed, and the mean restored: the subject's
    random intercept stays in the data.

    Everything is learned in ``fit`` from the training rows. ``transform``
    harmonizes new visits row by row: a visit of a training subject uses that
    subject's fitted random intercept; a visit of a subject unseen at ``fit``
    uses the population mean (random intercept 0), so that its deviation
    from the population is treated as ComBat treats a row, or, with
    ``unknown_subject="predict"``, the random intercept predicted (BLUP, with
    the fitted variances and fixed effects) from that subject's rows in the
    call (then a row's output depends on the other rows of its subject).

    The target ``y`` is not read: no target term is protected (unlike
    :class:`ComBatHarmonizer`'s ``protect_target``). NaN cells are refused
    (naming row and column), as longCombat does.

    Parameters
    ----------
    subject : str, default="subject"
        Column of ``X`` holding the subject of each row (visit).
    site : str, default="site"
        Column holding the acquisition site (scanner, centre) of each row.
    covariates : list of str or None, default=None
        Columns of ``X`` whose effects are kept (fixed effects: age, time,
        sex...). Numeric columns enter as float64, others one-hot (first
        level dropped).
    features : list of str or None, default=None
        Columns harmonized; default every column other than ``subject``,
        ``site`` and the covariates (they must be numeric).
    eb : bool, default=True
        Shrink the site estimates with empirical Bayes.
    parametric : bool, default=True
        Parametric (iterative) or non-parametric empirical Bayes.
    mean_only : bool, default=False
        Adjust only the location of each site.
    unseen_site : {"error", "passthrough"}, default="error"
        Rows of a site absent at ``fit``: raise (naming site and rows), or
        return them unharmonized.
    unknown_subject : {"population", "predict"}, default="population"
        Random intercept of a subject absent at ``fit``: 0, or predicted from
        its rows in the ``transform`` call.

    Attributes
    ----------
    sites_ : ndarray
        Training sites, sorted (the first is the reference of the fixed
        effects).
    subjects_ : ndarray
        Training subjects, sorted.
    features_ : list of str
        Harmonized columns.
    mixed_ : MixedFit
        Per-feature fixed effects, residual variance ``sigma2``, random
        intercept variance ``tau2`` and the training subjects' intercepts.
    grand_mean_ : ndarray of shape (n_features,)
        Intercept plus the row-weighted mean of the site effects.
    gamma_hat_, delta_hat_ : ndarray of shape (n_sites, n_features)
        Site location/scale of the standardized data.
    gamma_star_, delta_star_ : ndarray of shape (n_sites, n_features)
        After empirical Bayes.
    n_features_in_ : int
        Number of columns of ``X``.
    feature_names_in_ : ndarray of str
        Columns of ``X``.

    See Also
    --------
    ComBatHarmonizer : One row per subject.

    References
    ----------
    .. [1] Beer, Tustison, Cook, Davatzikos, Sheline, Shinohara, Linn (2020).
       Longitudinal ComBat: a method for harmonizing longitudinal multi-scanner
       imaging data. NeuroImage 220.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from sklearn_medprep import LongitudinalComBatHarmonizer
    >>> rng = np.random.default_rng(0)
    >>> subject = np.repeat(np.arange(12), 3)
    >>> u = rng.normal(size=12)[subject]  # each subject's own level
    >>> site = np.where(subject < 6, "A", "B")
    >>> X = pd.DataFrame({
    ...     "subject": subject, "site": site, "time": np.tile([0.0, 1, 2], 12),
    ...     "f1": u + rng.normal(size=36) + (site == "B"),
    ...     "f2": u + rng.normal(size=36) * np.where(site == "B", 2, 1),
    ... })
    >>> lc = LongitudinalComBatHarmonizer(covariates=["time"])
    >>> lc.fit_transform(X).shape
    (36, 2)
    """

    _parameter_constraints = {
        "subject": [str],
        "site": [str],
        "covariates": [list, None],
        "features": [list, None],
        "eb": ["boolean"],
        "parametric": ["boolean"],
        "mean_only": ["boolean"],
        "unseen_site": [StrOptions({"error", "passthrough"})],
        "unknown_subject": [StrOptions({"population", "predict"})],
    }

    def __init__(
        self,
        subject="subject",
        site="site",
        covariates=None,
        features=None,
        eb=True,
        parametric=True,
        mean_only=False,
        unseen_site="error",
        unknown_subject="population",
    ):
        self.subject = subject
        self.site = site
        self.covariates = covariates
        self.features = features
        self.eb = eb
        self.parametric = parametric
        self.mean_only = mean_only
        self.unseen_site = unseen_site
        self.unknown_subject = unknown_subject

    # -- input ---------------------------------------------------------------
    def _read(self, X, *, reset):
        if not isinstance(X, pd.DataFrame):
            raise SubjectTableError(
                f"{type(self).__name__} reads the subject column {self.subject!r} "
                f"and the site column {self.site!r} of a pandas DataFrame; got "
                f"{type(X).__name__}."
            )
        _check_feature_names(self, X, reset=reset)
        _check_n_features(self, X, reset=reset)
        covs = list(self.covariates or [])
        meta = [self.subject, self.site, *covs]
        if reset:
            feats = list(self.features) if self.features is not None else [
                c for c in X.columns if c not in meta
            ]
            self.features_ = feats
        feats = self.features_
        for column in [*meta, *feats]:
            if column not in X.columns:
                raise SubjectTableError(f"column {plain(column)!r} is not in X.")
        for column in [*meta, *feats]:
            missing = X[column].isna().to_numpy()
            if missing.any():
                raise SubjectTableError(
                    f"row {plain(X.index[np.argmax(missing)])!r}: column "
                    f"{plain(column)!r} is missing; longitudinal ComBat needs "
                    "every cell (impute or drop it first)."
                )
        for column in feats:
            kind = X[column].dtype
            if not is_numeric_dtype(kind) or is_bool_dtype(kind):
                raise SubjectTableError(
                    f"feature column {plain(column)!r} is not numeric; name the "
                    "harmonized columns with features=."
                )
        values = X[feats].to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            r, c = np.argwhere(~np.isfinite(values))[0]
            raise SubjectTableError(
                f"row {plain(X.index[r])!r}: column {plain(feats[c])!r} is not "
                "finite."
            )
        return values, X[covs]

    def _cov_design(self, cov, index, *, reset):
        if reset:
            linear, _, self.covariate_levels_ = design.encode_covariates(
                cov, index, None
            )
            return linear
        return design.encode_covariates(
            cov, index, None, levels=self.covariate_levels_,
            seen=list(self.covariates or []),
        ).linear

    # -- fit -----------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the mixed models and the site adjustments on the training rows.

        Parameters
        ----------
        X : pandas.DataFrame
            Training visits, with the subject and site columns.
        y : None
            Ignored (no target is protected).

        Returns
        -------
        self : LongitudinalComBatHarmonizer
        """
        values, cov = self._read(X, reset=True)
        if len(X) == 0:
            raise SubjectTableError(
                "LongitudinalComBatHarmonizer: X has 0 rows, nothing to fit."
            )
        self.sites_, site_codes = np.unique(
            X[self.site].to_numpy(), return_inverse=True
        )
        self.subjects_, subj_codes = np.unique(
            X[self.subject].to_numpy(), return_inverse=True
        )
        counts = np.bincount(site_codes, minlength=self.sites_.size)
        if self.sites_.size < 2 or counts.min() < 2:
            few = [plain(s) for s, n in zip(self.sites_, counts) if n < 2]
            raise SubjectTableError(
                "LongitudinalComBatHarmonizer needs at least 2 sites and at least "
                f"2 rows per site; got sites {plain(list(self.sites_))} (sites with "
                f"fewer than 2 rows: {few})."
            )
        cov_design = self._cov_design(cov, X.index, reset=True)
        mixed = fit_mixed_models(
            values, site_codes, self.sites_.size, cov_design, subj_codes,
            self.subjects_.size, self.features_,
        )
        self.mixed_ = mixed
        self.grand_mean_ = mixed.intercept + (counts @ mixed.site_effect) / len(X)
        s = self._standardize(values, cov_design, mixed.subject_effect[subj_codes])
        n_sites, n_feat = self.sites_.size, values.shape[1]
        self.gamma_hat_ = np.empty((n_sites, n_feat))
        self.delta_hat_ = np.empty((n_sites, n_feat))
        for i in range(n_sites):
            rows = s[site_codes == i]
            self.gamma_hat_[i] = rows.mean(axis=0)
            self.delta_hat_[i] = rows.var(axis=0, ddof=1)
        eb = self.eb and n_feat > 1
        adj = adjustments(
            EBInput(
                self.gamma_hat_, self.delta_hat_, self.gamma_hat_, self.delta_hat_,
                np.repeat(counts[:, None], n_feat, axis=1).astype(float),
                np.ones(n_feat, dtype=bool),
            ),
            EBOptions(eb=eb, parametric=self.parametric, mean_only=self.mean_only),
        )
        self.gamma_star_ = adj.gamma_star
        self.delta_star_ = (
            np.ones_like(adj.delta_star) if self.mean_only else adj.delta_star
        )
        return self

    def _mean(self, cov_design):
        return self.grand_mean_ + cov_design @ self.mixed_.coef_cov

    def _standardize(self, values, cov_design, u):
        return (values - self._mean(cov_design) - u) / np.sqrt(self.mixed_.sigma2)

    # -- transform -----------------------------------------------------------
    def _subject_effects(self, X, values, cov_design, site_codes, seen_site):
        """Random intercept of each row: fitted, 0 or predicted (unknown subject)."""
        subj = X[self.subject].to_numpy()
        pos = np.searchsorted(self.subjects_, subj)
        pos = np.minimum(pos, self.subjects_.size - 1)
        known = self.subjects_[pos] == subj
        u = np.zeros_like(values)
        u[known] = self.mixed_.subject_effect[pos[known]]
        if self.unknown_subject == "predict":
            mixed = self.mixed_
            fixed = (mixed.intercept + cov_design @ mixed.coef_cov)
            fixed[seen_site] += mixed.site_effect[site_codes[seen_site]]
            todo = ~known & seen_site
            for s in pd.unique(subj[todo]):
                rows = todo & (subj == s)
                n = rows.sum()
                shrink = mixed.tau2 / (mixed.tau2 + mixed.sigma2 / n)
                u[rows] = shrink * (values[rows] - fixed[rows]).mean(axis=0)
        return u

    def transform(self, X):
        """Harmonize visits of the training sites.

        Parameters
        ----------
        X : pandas.DataFrame
            Visits, with the subject, site and covariate columns.

        Returns
        -------
        X_out : pandas.DataFrame of shape (n_rows, n_features)
            The harmonized features, index of ``X``.
        """
        check_is_fitted(self)
        values, cov = self._read(X, reset=False)
        site = X[self.site].to_numpy()
        pos = np.minimum(np.searchsorted(self.sites_, site), self.sites_.size - 1)
        seen = self.sites_[pos] == site
        if not seen.all() and self.unseen_site == "error":
            rows = list(X.index[~seen])
            raise SubjectTableError(
                f"site(s) {plain(sorted(set(site[~seen].tolist())))} of row(s) "
                f"{plain(rows[:5])}{' ...' if len(rows) > 5 else ''} were not seen "
                "at fit; use unseen_site='passthrough' to return them unchanged."
            )
        out = values.copy()
        if len(X):
            cov_design = self._cov_design(cov, X.index, reset=False)
            u = self._subject_effects(X, values, cov_design, pos, seen)
            s = self._standardize(values, cov_design, u)
            g, d = self.gamma_star_[pos], self.delta_star_[pos]
            harm = np.sqrt(self.mixed_.sigma2) * (s - g) / np.sqrt(d)
            harm += self._mean(cov_design) + u
            out[seen] = harm[seen]
        return pd.DataFrame(out, index=X.index, columns=self.features_)

    def get_feature_names_out(self, input_features=None):
        """Names of the output columns: the harmonized features.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Checked against ``feature_names_in_``.

        Returns
        -------
        feature_names_out : ndarray of str
        """
        check_is_fitted(self)
        _check_feature_names_in(self, input_features)
        return np.asarray(self.features_, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags = subject_table_input_tags(
            tags.input_tags, image=False, string=True, categorical=True
        )
        return tags
