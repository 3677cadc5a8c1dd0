"""The named fit steps of ComBat, shared by the table and voxel estimators.

:class:`~sklearn_medprep.ComBatHarmonizer` and
:class:`~sklearn_medprep.VoxelComBatHarmonizer` fit the same model through the
same steps: the training sites (:meth:`ComBatFitSteps._fit_sites`), the
covariate design with the protected target
(:meth:`ComBatFitSteps._build_design`), the regression, standardization and
per-site location/scale (:meth:`ComBatFitSteps._estimate_site_effects`, run on
the whole table or chunk by chunk of voxels) and the empirical-Bayes
adjustments (:meth:`ComBatFitSteps._shrink`). A ComBat variant overrides one
step for both estimators.
"""

import warnings

import numpy as np

from ..exceptions import MedprepWarning, plain
from . import _core as core
from . import _design as design
from . import _target as target
from ._gam import fit_gam_coef

__all__ = ["ComBatFitSteps"]


class ComBatFitSteps:
    """Mixin: ComBat's fit steps, each reading the estimator's parameters.

    The estimator provides ``site``, ``reference_site``, ``protect_target``,
    ``parametric``, ``mean_only``, ``smooth_terms``, ``smooth_term_bounds``,
    ``interactions`` and ``random_state`` (an estimator without smooth terms
    or interactions sets the last four to None at class level).
    """

    def _fit_sites(self, batch):
        """Fit step: the training sites (``sites_``, ``site_counts_``).

        Parameters
        ----------
        batch : Batch
            The training rows.

        Returns
        -------
        SiteCoding
        """
        coding = design.fit_sites(batch.site_values, self.reference_site, self.site)
        self.sites_, self.site_counts_ = coding.labels, coding.counts
        self._ref_level = coding.ref_level
        return coding

    def _build_design(self, batch, coding):
        """Fit step: covariate design (and protected target) of the training rows.

        Sets the fitted design attributes (``covariates_``,
        ``covariate_levels_``, ``spline_knots_``, ``target_term_``,
        ``target_columns_``).

        Parameters
        ----------
        batch : Batch
            The training rows, with the target (protected) in ``batch.y``.
        coding : SiteCoding
            The training sites.

        Returns
        -------
        batch : Batch
            ``batch`` with its ``design_cov``.
        coef : ndarray or None
            The regression coefficients when smooth terms fit them
            (ComBat-GAM), else None.
        """
        self.covariates_ = list(batch.cov.columns)
        linear, spline, self.covariate_levels_ = design.encode_covariates(
            batch.cov, batch.index, self.smooth_terms, interactions=self.interactions
        )
        term, raw = None, None
        y = batch.y
        if y is not None and self.protect_target != "none":
            term, raw = target.fit_target_term(y, batch.index, self.protect_target)
        gam_linear, gam_spline = target.gam_inputs(linear, spline, term, raw)
        coef = None
        self.spline_knots_ = []
        if gam_spline.shape[1]:
            coef, self.spline_knots_ = fit_gam_coef(
                batch.get,
                batch.n_features,
                coding.codes,
                coding.labels.size,
                gam_linear,
                gam_spline,
                ref_level=coding.ref_level,
                bounds=self.smooth_term_bounds,
                random_state=self.random_state,
            )
        design_cov, self.target_columns_ = target.fit_design(
            linear, spline, self.spline_knots_, term, raw
        )
        self.target_term_ = term
        return batch.replace(design_cov=design_cov), coef

    def _design_names(self, n_design):
        """Names of the design columns (sites, then the covariate design)."""
        return design.design_names(
            self.site,
            self.sites_,
            self.covariates_,
            self.covariate_levels_,
            self.smooth_terms,
            self.interactions,
            self.target_term_,
            n_design,
        )

    def _estimate_site_effects(self, batch, coding, coef):
        """Fit step: regress, standardize, per-site location and scale.

        Parameters
        ----------
        batch : Batch
            The training rows with their ``design_cov`` (voxel ComBat: one
            chunk of voxels).
        coding : SiteCoding
            The training sites.
        coef : ndarray or None
            Coefficients from :meth:`_build_design` (ComBat-GAM), or None.

        Returns
        -------
        SiteStatistics
        """
        return core.site_statistics(
            batch.get,
            batch.n_features,
            coding.codes,
            coding.labels.size,
            batch.design_cov,
            ref_level=coding.ref_level,
            coef=coef,
            design_names=self._design_names(batch.design_cov.shape[1]),
        )

    def _shrink(self, stats, *, eb):
        """Fit step: empirical Bayes (or not) to the site adjustments (``eb_``).

        Parameters
        ----------
        stats : SiteStatistics
            Of every feature (voxel ComBat: the chunks' gathered).
        eb : bool
            Whether to shrink.

        Returns
        -------
        ComBatModel
        """
        self.eb_ = eb
        return core.shrink_sites(
            stats, eb=eb, parametric=self.parametric, mean_only=self.mean_only
        )

    def _transform_design(self, batch):
        """Transform step: the covariate design of rows to transform.

        The covariates are encoded with the training levels; the protected
        target's columns are filled with their training centre
        (:func:`~._target.design_matrix`), since a row's label is not
        read at transform.
        """
        linear, spline, _ = design.encode_covariates(
            batch.cov,
            batch.index,
            self.smooth_terms,
            levels=self.covariate_levels_,
            seen=self.covariates_,
            interactions=self.interactions,
        )
        return target.design_matrix(
            linear, spline, self.spline_knots_, self.target_term_
        )

    def _warn_empty_pairs(self, batch, out):
        """Warn of values at a site where the feature had no training value.

        Such a (feature, site) pair was not estimated at ``fit``: its values
        are returned unharmonized (the identity), named here by row.
        """
        empty = getattr(self.model_, "empty", None)
        if empty is None or not (empty & self.model_.ok).any():
            return
        sites = batch.sites
        for i, j in zip(*np.nonzero(empty & self.model_.ok)):
            at = sites.seen & (sites.codes == i) & np.isfinite(out[:, j])
            if at.any():
                rows = list(batch.table.index[at])
                warnings.warn(
                    f"Feature {plain(self.features_[j])!r} had no finite value "
                    f"at site {plain(self.sites_[i])!r} at fit: its values in "
                    f"{len(rows)} row(s) of that site ({plain(rows[:5])}"
                    f"{' ...' if len(rows) > 5 else ''}) are returned "
                    "unharmonized",
                    MedprepWarning,
                    stacklevel=4,
                )
