"""ComBat harmonization of the subject table, as a leak-free transformer."""

import numbers
import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from ..exceptions import MedprepWarning
from ..table._proxy import check_target_proxies
from ..utils._docstrings import fill_doc
from ..utils._tags import subject_table_input_tags
from . import _design as design
from . import _input as inputs
from . import _target as target
from ._apply import apply_combat, output_layout
from ._interchange import NeuroHarmonizeInterchange
from ._new_site_prior import fit_new_site_prior
from ._sites import BatchSites, estimate_new_site, resolve_unseen
from ._steps import ComBatFitSteps

__all__ = ["ComBatHarmonizer"]


#: Fields of the fitted model also shown as public attributes (``name_``).
_MODEL_VIEWS = ("coef", "grand_mean", "var_pooled", "gamma_hat", "delta_hat")
_MODEL_VIEWS += ("gamma_star", "delta_star", "priors")

#: Fewest rows of a new site that ``unseen_site="estimate"`` accepts.
MIN_NEW_SITE_SUBJECTS = design.MIN_NEW_SITE_SUBJECTS


@fill_doc
class ComBatHarmonizer(
    ComBatFitSteps, NeuroHarmonizeInterchange, TransformerMixin, BaseEstimator
):
    """Remove site effects from features with ComBat, fitted on training rows only.

    The model of neuroCombat / neuroHarmonize (Johnson et al. 2007; Fortin et
    al. 2018): each feature is regressed on site indicators and covariates,
    standardized with the pooled variance, and each site's location and scale
    are estimated, shrunk by empirical Bayes towards priors shared by the site's
    features, and removed. ``fit`` learns only parameters whose size is the
    number of features or of sites; ``transform`` applies them to any rows of the
    training sites (one row included), so that harmonizing inside a
    :class:`~sklearn.pipeline.Pipeline` under cross-validation does not leak.
    The target passed to ``fit`` is protected (``protect_target``): its effect
    is kept, without the labels of the rows being needed to transform them.

    Parameters
    ----------
    %(site)s
        Read from ``X`` unless ``sites=`` is passed to ``fit``/``transform``
        (metadata routing). A plain array ``X`` requires ``sites=``: the
        estimator never harmonizes without knowing the sites.
    covariates : list of str or None, default=None
        Columns of ``X`` whose effects are preserved (age, sex, ...). Numeric
        columns enter the design as float64; string, categorical and boolean
        columns are one-hot encoded (first level dropped). Overridden by a
        routed ``covariates=`` DataFrame.
    smooth_terms : list of str or None, default=None
        Covariates modelled as smooth, non-linear terms (ComBat-GAM: cubic
        B-splines with 10 degrees of freedom, penalty chosen by 5-fold
        cross-validation with statsmodels, as neuroHarmonize does).
    smooth_term_bounds : tuple of (float or None, float or None) or None, \
default=None
        Boundary knots ``(min, max)`` of a single smooth term, so that the
        basis covers values outside the training range.
    eb : bool, default=True
        Shrink the site estimates with empirical Bayes. With one feature the
        priors cannot be estimated and ``eb`` is not applied (as neuroHarmonize).
    parametric : bool, default=True
        Parametric (iterative) or non-parametric empirical Bayes.
    mean_only : bool, default=False
        Adjust only the location of each site, not its scale.
    reference_site : str, int or None, default=None
        Site whose data are kept unchanged and towards which the others are
        harmonized.
    unseen_site : {"error", "estimate", "estimate_outside_target", \
"estimate_prior", "estimate_prior_cov", "passthrough"}, default="error"
        Rows of a site absent at ``fit``: ``"error"`` raises naming the site;
        ``"estimate"`` estimates the new site's location and scale from its rows
        in the batch (at least ``MIN_NEW_SITE_SUBJECTS`` = 5), the fitted model
        held fixed; ``"estimate_outside_target"`` (needs a protected target)
        does the same outside the span of the target's coefficients, so that
        a shift or spread of the new site's target distribution is kept, not
        removed with the site (user guide, "New sites");
        ``"estimate_prior"`` (needs a protected target) splits the new site's
        mean between a site location and a shift of its target, each with a
        prior learned on the training sites (how sites differ, how far a
        site's target distribution moves; a cubic spline of a numeric
        target); ``"estimate_prior_cov"`` (needs a protected target, at
        most ``MAX_COV_FEATURES`` = 5000 features) does the same with the
        features' covariances (within-site noise, debiased site locations)
        learned on the training sites, the new site's scale shrunk
        towards theirs and a site unlike them all recognised, the best
        measured on FCON1000 leave-one-site-out;
        ``"passthrough"`` returns them unchanged with a warning.
    features : list of str or None, default=None
        Columns to harmonize; ``None`` takes every numeric column that is neither
        the site nor a covariate.
    keep_covariates : bool, default=False
        Keep the site and covariate columns in the output (they are dropped by
        default, having been consumed). Other non-feature columns are always
        passed through unchanged.
    random_state : int, RandomState instance or None, default=None
        Seeds the cross-validated choice of the smoothing penalty (only used
        with ``smooth_terms`` or ``protect_target="smooth"``).
    protect_target : {"auto", "classes", "linear", "smooth", "none"}, \
default="auto"
        Protect the target ``y`` passed to ``fit``, so that its effect on the
        features is not removed with the site's wherever the two are
        associated (prevalence or age range differing between sites). In
        ``fit``, ``y`` enters the ComBat design as a term estimated on the
        training rows: ``"classes"`` one-hot (first class dropped),
        ``"linear"`` a numeric slope, ``"smooth"`` a ComBat-GAM spline;
        ``"auto"`` takes classes for strings, booleans, categories and
        integers with at most 10 distinct values, otherwise linear. A
        survival ``y`` (scikit-survival's structured array of event and time)
        is protected through its event indicator, as two classes (``"auto"``
        or ``"classes"``; ``"linear"`` and ``"smooth"`` are refused), its
        censored time not at all (user guide, "Survival targets").
        ``transform`` never reads ``y``: every row gets the target's term at
        its training centre (the mean of its design columns), so that a row's
        output cannot depend on its label. With ``mean_only=True`` the term
        cancels exactly. With scale adjustment, see ``target_scale``.
        ``"none"``, or ``fit`` without ``y``, protects nothing (plain ComBat).
        With ``unseen_site="estimate"``, a new site's location absorbs any
        shift of its target distribution from the training centre (warned
        at ``transform``).
    interactions : list of (str, str) or str, or None, default=None
        Interaction terms between covariates, as neuroCombat users add them
        to their covariate table: ``[("age", "sex")]`` or ``["age:sex"]``
        adds the products of the two covariates' design columns (a numeric
        covariate is its value, a categorical one its 0/1 columns, first
        level dropped), so that the age slope may differ by sex. Both must
        be linear (not smooth) covariates.
    target_scale : {"centre", "project"}, default="centre"
        With a protected target and scale adjustment (``mean_only=False``),
        how ``transform`` treats a row's target effect, which its unknown
        label would tell. ``"centre"``: the target's term at its training
        centre, so that the row's own target effect is multiplied by
        ``1 / sqrt(delta*)`` of its site like the rest of its variation; the
        difference from harmonizing with the row's label is
        ``(t - t_bar) theta (1 - 1 / sqrt(delta*))``; ``to_neuroharmonize``
        can export it. ``"project"``: the component of the row's standardized
        residual along the target's coefficients (its least-squares
        projection over the features, an estimate of the row's target effect
        from its own features, noise included) is kept out of the scale
        adjustment, the rest is scaled. Either way only the row's features
        are read, never its label. See the user guide ("Protecting the target")
        for both measured on FCON1000.
    categorical : list of str or int, or None, default=None
        Covariates declared categorical whatever their dtype, by name (or
        position among the covariates): scanner codes stored as numbers, or
        the text columns of a mixed-type covariate array (``np.asarray`` of
        float age and text sex holds only text: with ``categorical=[1]`` sex
        is categorical and age read as a number; without it such an array
        is refused as ambiguous). ``None`` takes the dtype rule above.

    Attributes
    ----------
    sites_ : ndarray of shape (n_sites,)
        Training sites, sorted.
    site_counts_ : ndarray of shape (n_sites,)
        Training rows per site.
    features_ : ndarray of shape (n_features,)
        Names of the harmonized columns.
    covariates_ : list of str
        Covariate names.
    covariate_levels_ : dict
        For each categorical covariate, its levels (first one is the baseline).
    coef_ : ndarray of shape (n_design, n_features)
        Regression coefficients (site, then covariate, target and spline
        columns).
    grand_mean_ : ndarray of shape (n_features,)
    var_pooled_ : ndarray of shape (n_features,)
    gamma_hat_, delta_hat_ : ndarray of shape (n_sites, n_features)
        Per-site location/scale estimates before shrinkage.
    gamma_star_, delta_star_ : ndarray of shape (n_sites, n_features)
        Adjustments applied by ``transform``.
    priors_ : dict of ndarray of shape (n_sites,)
        ``gamma_bar``, ``t2``, ``a_prior``, ``b_prior``.
    harmonized_ : ndarray of bool of shape (n_features,)
        False for features left unchanged (no residual variance, or not
        estimable).
    degenerate_ : ndarray of bool of shape (n_sites, n_features)
        Site/feature pairs without spread within the site (standardized
        variance below ``1e-10``, e.g. a voxel size constant at a site): their
        location is harmonized, their scale left unchanged (``delta* = 1``),
        and the other sites of the feature are harmonized as usual (warned).
    model_ : ComBatModel
        The fitted model (the arrays above, the design's site count and
        reference site) that ``transform`` applies; a ComBat variant extends
        it.
    eb_ : bool
        Whether empirical Bayes was used: ``eb``, except with a single feature,
        where there is nothing to pool across (as neuroHarmonize does).
    spline_knots_ : list of ndarray
        Knots of the smooth terms (a smooth target's last).
    target_term_ : TargetTerm or None
        The protected target (``kind``, class ``levels``, training ``centre``
        of its design columns); None when nothing is protected.
    new_site_prior_ : NewSitePrior or None
        With ``unseen_site="estimate_prior"`` or ``"estimate_prior_cov"``:
        the target's effect in a spline basis, the covariance of the training
        sites' target shifts and their locations (and, for the latter, the
        features' covariances and the scale prior), learned on the training
        rows; else None.
    target_columns_ : ndarray of bool of shape (n_design - n_sites,)
        Which covariate-design columns (rows of ``coef_`` after the sites)
        are the target's.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when ``X`` is a DataFrame.

    See Also
    --------
    sklearn_medprep.model_selection.SiteStratifiedKFold :
        Keeps every site in every training fold.
    sklearn_medprep.site_effect_report : Site ANOVA before/after.

    References
    ----------
    .. [1] Johnson, Li, Rabinovic (2007). Adjusting batch effects in microarray
       expression data using empirical Bayes methods. Biostatistics 8(1).
    .. [2] Fortin et al. (2018). Harmonization of cortical thickness
       measurements across scanners and sites. NeuroImage 167.
    .. [3] Pomponio et al. (2020). Harmonization of large MRI datasets for the
       analysis of brain imaging patterns throughout the lifespan. NeuroImage 208.

    Examples
    --------
    >>> from sklearn_medprep import ComBatHarmonizer
    >>> from sklearn_medprep.datasets import make_multisite_features
    >>> df = make_multisite_features(n_subjects=60, n_features=4, random_state=0)
    >>> combat = ComBatHarmonizer(covariates=["age", "sex"])
    >>> out = combat.fit_transform(df.drop(columns="y"))
    >>> list(out.columns)
    ['f000', 'f001', 'f002', 'f003']
    >>> out.index.equals(df.index)
    True
    >>> combat.gamma_star_.shape
    (3, 4)

    In a Pipeline the target reaches ``fit`` and is protected; ``transform``
    never needs it:

    >>> X, y = df.drop(columns="y"), df["y"]
    >>> fitted = ComBatHarmonizer(covariates=["age", "sex"]).fit(X, y)
    >>> fitted.target_term_.kind
    'classes'
    >>> fitted.transform(X).equals(fitted.transform(X.iloc[::-1]).iloc[::-1])
    True
    """

    _parameter_constraints = {
        "site": [str, numbers.Integral],
        "covariates": [list, tuple, None],
        "smooth_terms": [list, tuple, None],
        "smooth_term_bounds": [tuple, None],
        "eb": ["boolean"],
        "parametric": ["boolean"],
        "mean_only": ["boolean"],
        "reference_site": [str, numbers.Integral, None],
        "unseen_site": [
            StrOptions(
                {"error", "estimate", "estimate_outside_target",
                 "estimate_prior", "estimate_prior_cov", "passthrough"}
            )
        ],
        "features": [list, tuple, None],
        "keep_covariates": ["boolean"],
        "random_state": ["random_state"],
        "protect_target": [
            StrOptions({"auto", "classes", "linear", "smooth", "none"})
        ],
        "interactions": [list, tuple, None],
        "target_scale": [StrOptions({"project", "centre"})],
        "categorical": [list, tuple, None],
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
    ):
        self.site = site
        self.covariates = covariates
        self.smooth_terms = smooth_terms
        self.smooth_term_bounds = smooth_term_bounds
        self.eb = eb
        self.parametric = parametric
        self.mean_only = mean_only
        self.reference_site = reference_site
        self.unseen_site = unseen_site
        self.features = features
        self.keep_covariates = keep_covariates
        self.random_state = random_state
        self.protect_target = protect_target
        self.interactions = interactions
        self.target_scale = target_scale
        self.categorical = categorical

    # ---------------------------------------------------------------- fit steps
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, *, sites=None, covariates=None):
        """Learn the site location/scale parameters from the training rows.

        Parameters
        ----------
        X : pandas.DataFrame of shape (n_samples, n_columns) or array-like
            Subject table with the site, covariate and feature columns, or a
            numeric array (then ``sites=`` is required).
        y : array-like of shape (n_samples,), default=None
            Training target, protected in the design (``protect_target``). A
            covariate equal to ``y`` up to relabelling is refused (the target
            is unknown at transform time), and so is a feature or
            pass-through column that is ``y`` in disguise (equal, relabelled,
            a change of unit or a monotone map of it; a near one warns): see
            :func:`~sklearn_medprep.table.check_target_proxies`.
        sites : array-like of shape (n_samples,), default=None
            Site of each row (metadata routing); overrides the site column.
        covariates : pandas.DataFrame or array-like, default=None
            Covariates of each row (metadata routing); override ``covariates``.

        Returns
        -------
        self : ComBatHarmonizer
            Fitted estimator.
        """
        batch = self._validate_fit_input(X, y, sites, covariates)
        coding = self._fit_sites(batch)
        batch, coef = self._build_design(batch, coding)
        stats = self._estimate_site_effects(batch, coding, coef)
        model = self._shrink(stats, eb=bool(self.eb) and batch.n_features > 1)
        rows = None
        if model.empty is not None and model.empty.any():
            index = batch.table.index
            rows = [index[coding.codes == i] for i in range(len(self.sites_))]
        for message in model.degenerate_report(batch.feats, self.sites_, rows):
            warnings.warn(message, MedprepWarning, stacklevel=3)  # < wrapper < caller
        self.features_ = np.asarray(batch.feats, dtype=object)
        self._set_model(model)
        self.new_site_prior_ = None
        covs = self.unseen_site == "estimate_prior_cov"
        if self.unseen_site != "estimate" and self.unseen_site.startswith("estimate"):
            # refused now, not later
            target.target_basis(model, self.target_columns_, self.target_term_)
        if covs or self.unseen_site == "estimate_prior":
            self.new_site_prior_ = fit_new_site_prior(
                batch.get, batch.n_features, batch.design_cov, coding.codes,
                len(self.sites_), model, self.target_columns_,
                self.target_term_.kind, covariances=covs,
            )
        self._output_columns = np.asarray(self._handed_on(X, batch), dtype=object)
        self._feature_index = pd.Index(self.features_)
        frame = isinstance(X, pd.DataFrame)
        self._layout = (batch.table.columns, batch.positions) if frame else None
        self._fit_after_combat(X, sites, covariates, batch.design_cov)
        return self

    def _table_spec(self, *, reset):
        """What :meth:`_read_batch` reads: the column parameters (a TableSpec)."""
        return inputs.TableSpec(
            site=self.site,
            covariate_columns=self.covariates,
            features=self.features,
            features_seen=None if reset else self.features_,
            reset=reset,
            layout=None if reset else self._layout,
            categorical=self.categorical,
        )

    def _read_batch(self, X, y, sites, covariates, *, reset):
        """Read step: split ``X`` into features, sites, covariates (a Batch).

        The one step that knows the input's columns: a variant that reads
        more (a subject column of longitudinal ComBat) overrides it, e.g.
        with ``self._table_spec(reset=reset)`` plus ``extra_columns``, and
        finds the values in ``batch.extra``.

        Parameters
        ----------
        X : pandas.DataFrame or array-like
            The rows.
        y : array-like or None
            The training target in ``fit``; None in ``transform``.
        sites, covariates : array-like, DataFrame or None
            Routed metadata.
        reset : bool
            True in ``fit``, False in ``transform``.

        Returns
        -------
        Batch
            With ``y`` (the target of ``fit``) in ``batch.y``.
        """
        return inputs.read_table(
            self, X, sites, covariates, self._table_spec(reset=reset), y=y
        )

    def _handed_on(self, X, batch):
        """Columns of the output: the features and every pass-through column.

        Site and covariate columns read from the table are left out unless
        ``keep_covariates=True``; an array input gives the features only.
        """
        if not isinstance(X, pd.DataFrame):
            return list(batch.feats)
        columns = batch.table.columns
        if self.keep_covariates or not batch.from_table:
            return columns.tolist()
        # vectorized: iterating pandas 3's Arrow-backed labels is slow
        return columns[~columns.isin(list(batch.from_table))].tolist()

    def _validate_fit_input(self, X, y, sites, covariates):
        """Fit step 1: read the training rows; refuse the target as an input.

        A covariate equal to ``y`` is refused, and so is any column handed on
        to the next step (harmonized or passed through) that is ``y`` in
        disguise (:func:`~sklearn_medprep.table.check_target_proxies`).
        """
        batch = self._read_batch(X, y, sites, covariates, reset=True)
        if batch.y is not None:
            target.check_target_not_covariate(batch.cov, batch.y)
            check_target_proxies(
                batch.table,
                batch.y,
                columns=self._handed_on(X, batch),
                estimator=type(self).__name__,
            )
        inputs.check_feature_columns(
            batch.table,
            batch.feats,
            batch.y,
            batch.from_table,
            features=self.features,
            get=batch.get,
        )
        return batch

    def _fit_after_combat(self, X, sites, covariates, fit_design):
        """Last fit step: what a variant learns after ComBat (nothing here).

        ``fit_design`` is the training rows' covariate design with the
        protected target at each row's own value (``transform`` has it at its
        training centre).
        """

    def _set_model(self, model):
        """Keep the fitted :class:`~._core.ComBatModel` and its public views."""
        self.model_ = model
        for name in _MODEL_VIEWS:
            setattr(self, f"{name}_", getattr(model, name))
        self.harmonized_ = model.ok
        self.degenerate_ = model.degenerate

    # ---------------------------------------------------------- transform steps
    def transform(self, X, *, sites=None, covariates=None):
        """Harmonize the features of ``X`` with the fitted parameters.

        Each row is harmonized with its own site's parameters only, so its
        output does not depend on the other rows (except under
        ``unseen_site="estimate"`` for rows of new sites). NaN cells stay NaN.

        Parameters
        ----------
        X : pandas.DataFrame or array-like
            Rows to harmonize, with the columns seen in ``fit``.
        sites : array-like of shape (n_samples,), default=None
            Site of each row (metadata routing).
        covariates : pandas.DataFrame or array-like, default=None
            Covariates of each row (metadata routing).

        Returns
        -------
        X_out : pandas.DataFrame or ndarray
            Same index and row order; features harmonized, site and covariate
            columns dropped unless ``keep_covariates=True``. An ndarray when
            ``X`` is one.
        """
        check_is_fitted(self)
        batch = self._prepare_rows(X, sites, covariates)
        out = self._adjust(batch)
        return self._assemble(X, batch, out)

    def _prepare_rows(self, X, sites, covariates):
        """Transform steps 1-3: read the rows, their design, their sites."""
        batch = self._read_batch(X, None, sites, covariates, reset=False)
        batch = batch.replace(design_cov=self._transform_design(batch))
        return batch.replace(sites=self._resolve_sites(batch))

    def _resolve_sites(self, batch):
        """Transform step 3: rows' sites; new sites estimated or passed through."""
        sites = BatchSites.encode(self.sites_, batch.site_values)
        return resolve_unseen(
            sites,
            self.unseen_site,
            batch.site_values,
            batch.index,
            self.site,
            self.sites_,
            lambda rows: self._estimate_new_site(batch, rows),
            protected=self.target_term_ is not None,
        )

    def _estimate_new_site(self, batch, rows):
        """Location/scale of a new site from its ``rows``, the model held fixed."""
        basis = None
        if self.unseen_site == "estimate_outside_target":
            basis = target.target_basis(
                self.model_, self.target_columns_, self.target_term_
            )
        return estimate_new_site(
            inputs.rows_getter(batch.get, rows),
            batch.n_features,
            batch.design_cov[rows],
            self.model_,
            eb=self.eb_,
            parametric=self.parametric,
            mean_only=self.mean_only,
            target_basis=basis,
            prior=self.new_site_prior_,
            site=batch.site_values[rows][0],
        )

    def _adjust(self, batch):
        """Transform step 4: remove each row's site location and scale.

        ``out = a x + e - (a - 1) m`` per feature, with ``a = 1 / sqrt(delta*)``
        of the row's site and ``m`` the covariate (and protected target)
        effects of its design row (:func:`~._apply.apply_combat`).
        With ``target_scale="project"``, each row's estimated target effect is
        then exempted from the scale
        (:func:`~._target.keep_target_direction`).
        """
        out = np.empty(
            (batch.table.shape[0], batch.n_features),
            order=output_layout(batch.get, batch.n_features),
        )
        apply_combat(
            batch.get, out, batch.sites, batch.design_cov, self.model_
        )
        if self._keeps_target_direction():
            target.keep_batch_target_direction(
                out, batch, self.model_, self.target_columns_
            )
        self._warn_empty_pairs(batch, out)
        return out

    def _keeps_target_direction(self):
        """Whether transform exempts the rows' target effect from the scale."""
        return (
            self.target_term_ is not None
            and not self.mean_only
            and self.target_scale == "project"
        )

    def _assemble(self, X, batch, out):
        """Transform step 5: the output container (index, pass-through)."""
        if not isinstance(X, pd.DataFrame):
            return out
        table, feats = batch.table, batch.feats
        index = table.index
        harmonized = pd.DataFrame(
            out, index=index, columns=self._feature_index, copy=False
        )  # pandas 3 copies an ndarray unless told not to
        columns = self._output_columns
        if len(columns) == len(feats):
            return harmonized
        is_feature = set(feats)
        pieces = {c: table[c] for c in columns if c not in is_feature}
        result = pd.concat([harmonized, pd.DataFrame(pieces, index=index)], axis=1)
        return result[columns]

    def fit_transform(self, X, y=None, *, sites=None, covariates=None):
        """Fit to ``X`` then harmonize it (the same as ``fit(X).transform(X)``).

        Overridden so that ``sites=`` and ``covariates=`` reach ``transform``
        under metadata routing.

        Parameters
        ----------
        X : pandas.DataFrame or array-like
            Training subject table.
        y : array-like, default=None
            Training target, protected in ``fit`` (never used by the
            transform of the rows).
        sites : array-like, default=None
            Site of each row.
        covariates : pandas.DataFrame or array-like, default=None
            Covariates of each row.

        Returns
        -------
        X_out : pandas.DataFrame or ndarray
            Harmonized training rows.
        """
        return self.fit(X, y, sites=sites, covariates=covariates).transform(
            X, sites=sites, covariates=covariates
        )

    def get_feature_names_out(self, input_features=None):
        """Names of the output columns.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Checked against ``feature_names_in_`` (when fitted on a
            DataFrame) or ``n_features_in_``.

        Returns
        -------
        feature_names_out : ndarray of str
            The harmonized features, in input order, with the pass-through
            columns (and site/covariates when ``keep_covariates=True``).
        """
        check_is_fitted(self)
        _check_feature_names_in(self, input_features)
        return np.asarray(self._output_columns, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags = subject_table_input_tags(
            tags.input_tags,
            image=False,
            allow_nan=True,
            string=True,
            categorical=True,
        )
        return tags
