"""ComBat with site-constant features (acquisition descriptors) pooled."""

import dataclasses
import numbers
import warnings

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from ..exceptions import MedprepWarning, plain
from . import _input as inputs
from . import _target as target
from ._combat import ComBatHarmonizer
from ._sites import estimate_new_site

__all__ = ["SiteConstantComBatHarmonizer"]


class SiteConstantComBatHarmonizer(ComBatHarmonizer):
    """ComBat that pools the features constant within a site, leak-free.

    A feature that takes one value for every training row of a site (an
    image size, a voxel spacing, a quality index that is 0 for a whole
    scanner) is an acquisition descriptor there: within that site it carries
    no information about the subject, only about the site. ComBat
    (:class:`ComBatHarmonizer`) cannot estimate such a site's scale and
    leaves the feature's distribution at the sites where it does vary
    (often a point mass with a few other values) to a location/scale map
    learned from a handful of distinct values; on the held-out rows of ABIDE's
    MRIQC metrics the 8 metrics constant within some site alone let a linear
    classifier find the site at 0.27 balanced accuracy after ComBat (chance
    0.059, ``benchmarks/bench_residual_site.py``).

    With ``site_constant="pool"`` (the default) every feature that is constant
    within at least ``min_constant_sites`` training sites is *pooled*:
    ``transform`` returns, for every row of a training site or of a new site,
    its modelled mean (the grand mean plus the covariate effects, the protected
    target at its training centre), the value ComBat already gives the rows of
    the sites where the feature is constant. A feature constant within every
    training site, which ComBat returns unharmonized (it has no pooled
    variance) although it then names each site exactly, is pooled too. What
    is removed is therefore the
    whole site-specific distribution of those features, not only its mean and
    variance; the other features are harmonized by ComBat exactly as
    :class:`ComBatHarmonizer` does (with ``site_constant="harmonize"``, or when
    no feature is constant within a site, the output equals
    :class:`ComBatHarmonizer`'s). A new site needs nothing estimated for the
    pooled features (their value does not depend on the site), so every
    ``unseen_site`` policy applies to the other features as in ComBat;
    ``"passthrough"`` returns the new site's rows unchanged, pooled features
    included. NaN cells stay NaN. Which features are pooled is learned in
    ``fit`` from the training rows only (``pooled_features_``) and warned of
    by name (a :class:`~sklearn_medprep.exceptions.MedprepWarning`), since
    their within-site variation is discarded.

    Parameters
    ----------
    site, covariates, smooth_terms, smooth_term_bounds, eb, parametric, \
mean_only, reference_site, unseen_site, features, keep_covariates, \
random_state, protect_target, interactions, target_scale, categorical
        As in :class:`ComBatHarmonizer`.
    site_constant : {"pool", "harmonize"}, default="pool"
        ``"pool"``: the features constant within at least
        ``min_constant_sites`` training sites are returned at their modelled
        mean; ``"harmonize"``: ComBat's treatment (location removed at the
        sites where the feature is constant, scale left unchanged there).
    min_constant_sites : int, default=1
        How many training sites a feature must be constant within to be
        pooled.

    Attributes
    ----------
    pooled_features_ : ndarray of object
        Names of the pooled features (empty with ``"harmonize"``).
    pooled_ : ndarray of bool of shape (n_features,)
        Which features are pooled, in the order of ``features_``.
    sites_, features_, coef_, gamma_star_, delta_star_, harmonized_ : ndarray
        And the other attributes, as in :class:`ComBatHarmonizer`.

    See Also
    --------
    ComBatHarmonizer : ComBat alone (``site_constant="harmonize"``).
    CovBatHarmonizer : ComBat and the site effects in covariance.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from sklearn_medprep import SiteConstantComBatHarmonizer
    >>> from sklearn_medprep.datasets import make_multisite_features
    >>> df = make_multisite_features(n_subjects=60, n_features=4, random_state=0)
    >>> df["spacing"] = df["site"].map({"site_0": 1.0, "site_1": 1.2, "site_2": 0.9})
    >>> df.loc[df.index[-1], "spacing"] = 1.1  # one scan of site_2 differs
    >>> h = SiteConstantComBatHarmonizer()
    >>> with warnings.catch_warnings():  # it names the pooled feature
    ...     warnings.simplefilter("ignore")
    ...     out = h.fit_transform(df.drop(columns=["y", "age", "sex"]))
    >>> list(h.pooled_features_), np.unique(out["spacing"].round(6)).tolist()
    (['spacing'], [1.005])
    """

    _parameter_constraints = {
        **ComBatHarmonizer._parameter_constraints,
        "site_constant": [StrOptions({"pool", "harmonize"})],
        "min_constant_sites": [Interval(numbers.Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        site="site",
        covariates=None,
        smooth_terms=None,
        smooth_term_bounds=None,
        eb=True,
        parametric=True,
        mean_only=False,
        reference_site=None,
        unseen_site="error",
        features=None,
        keep_covariates=False,
        random_state=None,
        protect_target="auto",
        interactions=None,
        target_scale="centre",
        categorical=None,
        site_constant="pool",
        min_constant_sites=1,
    ):
        super().__init__(
            site=site,
            covariates=covariates,
            smooth_terms=smooth_terms,
            smooth_term_bounds=smooth_term_bounds,
            eb=eb,
            parametric=parametric,
            mean_only=mean_only,
            reference_site=reference_site,
            unseen_site=unseen_site,
            features=features,
            keep_covariates=keep_covariates,
            random_state=random_state,
            protect_target=protect_target,
            interactions=interactions,
            target_scale=target_scale,
            categorical=categorical,
        )
        self.site_constant = site_constant
        self.min_constant_sites = min_constant_sites

    def _estimate_site_effects(self, batch, coding, coef):
        """Fit step (site effects): ComBat's, and the features to pool.

        A feature is pooled when its training rows are constant (NaN aside)
        within at least ``min_constant_sites`` sites, including a feature
        constant within every site, which ComBat leaves unharmonized (no
        pooled variance) although it then identifies each site exactly.
        """
        stats = super()._estimate_site_effects(batch, coding, coef)
        self._constant_counts = np.asarray(stats.constant).sum(axis=0)
        return stats

    def _shrink(self, stats, *, eb):
        """Fit step (empirical Bayes): ComBat's, then the pooled features.

        The pooled features' site/feature pairs are no longer reported as
        degenerate (their scale is not "left unchanged": the feature is
        pooled), and one warning names the pooled features.
        """
        model = super()._shrink(stats, eb=eb)
        self._combat_model = model  # what a new site is estimated with
        counts = self._constant_counts
        pooled = np.zeros(model.ok.shape, dtype=bool)
        if self.site_constant == "pool":
            n_sites = model.n_sites
            with np.errstate(invalid="ignore"):
                estimable = (
                    np.isfinite(model.grand_mean)
                    & np.isfinite(model.coef[n_sites:]).all(axis=0)
                    & ~np.all(model.empty, axis=0)
                )
            pooled = estimable & (counts >= self.min_constant_sites)
        self.pooled_ = pooled
        if pooled.any():
            # a feature constant within every training site has no pooled
            # variance and is left unharmonized by ComBat (the identity); pooled,
            # it is harmonized: identity tables, then its modelled mean in
            # _adjust
            newly = pooled & ~model.ok
            gamma_star, delta_star = model.gamma_star.copy(), model.delta_star.copy()
            gamma_star[:, newly] = 0.0
            delta_star[:, newly] = 1.0
            model = dataclasses.replace(
                model,
                ok=model.ok | pooled,
                gamma_star=gamma_star,
                delta_star=delta_star,
                degenerate=model.degenerate & ~pooled[None, :],
            )
        return model

    def fit(self, X, y=None, *, sites=None, covariates=None):
        """Learn ComBat's parameters and which features to pool.

        Parameters
        ----------
        X : pandas.DataFrame of shape (n_samples, n_columns) or array-like
            Subject table, as for :meth:`ComBatHarmonizer.fit`.
        y : array-like of shape (n_samples,), default=None
            Training target, protected in the design.
        sites : array-like of shape (n_samples,), default=None
            Site of each row (metadata routing).
        covariates : pandas.DataFrame or array-like, default=None
            Covariates of each row (metadata routing).

        Returns
        -------
        self : SiteConstantComBatHarmonizer
            Fitted estimator.
        """
        super().fit(X, y, sites=sites, covariates=covariates)
        self.pooled_features_ = np.asarray(self.features_[self.pooled_], dtype=object)
        if self.pooled_.any():
            names = self.pooled_features_
            more = f" ... ({names.size} features)" if names.size > 5 else ""
            warnings.warn(
                f"{names.size} feature(s) are constant within at least "
                f"{self.min_constant_sites} training site(s) and are pooled "
                "(returned at their modelled mean at every site, their "
                f"within-site variation discarded): {plain(list(names[:5]))}"
                f"{more}. Pass site_constant='harmonize' for ComBat's treatment",
                MedprepWarning,
                stacklevel=2,
            )
        return self

    def _estimate_new_site(self, batch, rows):
        """A new site's location/scale, as :class:`ComBatHarmonizer` estimates it.

        With ComBat's own fitted model (the pooled features as ComBat has
        them), so that the new site's other features equal ComBat's; the
        pooled features need no estimate.
        """
        basis = None
        if self.unseen_site == "estimate_outside_target":
            basis = target.target_basis(
                self._combat_model, self.target_columns_, self.target_term_
            )
        return estimate_new_site(
            inputs.rows_getter(batch.get, rows),
            batch.n_features,
            batch.design_cov[rows],
            self._combat_model,
            eb=self.eb_,
            parametric=self.parametric,
            mean_only=self.mean_only,
            target_basis=basis,
        )

    def _adjust(self, batch):
        """Transform step 4: ComBat, then the pooled features at their mean.

        Each pooled cell becomes its row's modelled mean (grand mean plus
        covariate effects, the protected target at its training centre);
        NaN cells and the rows passed through (``unseen_site="passthrough"``)
        are kept.
        """
        out = super()._adjust(batch)
        cols = np.flatnonzero(self.pooled_)
        if not cols.size:
            return out
        coef_cov = self.model_.coef_cov[:, cols]
        mean = batch.design_cov @ coef_cov + self.model_.grand_mean[cols]
        keep = np.isnan(out[:, cols])
        passthrough = batch.sites.passthrough
        if passthrough is not None and np.any(passthrough):
            keep |= np.asarray(passthrough, dtype=bool)[:, None]
        out[:, cols] = np.where(keep, out[:, cols], mean)
        return out
