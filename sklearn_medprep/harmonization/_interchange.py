"""Model interchange between :class:`ComBatHarmonizer` and neuroHarmonize.

neuroHarmonize keeps a fitted model as a dict (``harmonizationLearn``'s first
output, pickled by ``saveHarmonizationModel``). Its linear ComBat model is the
same as ours: site indicators then numeric covariates in the design
(``B_hat``), a grand mean (``stand_mean``), a pooled variance and per-site
adjustments. These functions translate one into the other, so that a lab's
existing models run inside a scikit-learn Pipeline and ours can be applied by
neuroHarmonize. Models with smooth terms (ComBat-GAM) are not translated:
neuroHarmonize keeps a statsmodels smoother object, not knots.
"""

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from . import _core as core

__all__ = ["NeuroHarmonizeInterchange", "from_neuroharmonize", "to_neuroharmonize"]


class NeuroHarmonizeInterchange:
    """Mixin of :class:`ComBatHarmonizer`: to and from neuroHarmonize models."""

    @classmethod
    def from_neuroharmonize(cls, model, *, features=None, site="site", covariates=None):
        """Build a fitted harmonizer from a neuroHarmonize model.

        The model is the dict that ``harmonizationLearn`` returns (or that
        ``loadHarmonizationModel`` reads back from ``saveHarmonizationModel``'s
        file); models with smooth terms are refused. The estimator harmonizes
        a DataFrame whose columns are ``features``, then ``site``, then the
        covariates (neuroHarmonize's ``covars`` columns other than SITE, in
        their order), like ``harmonizationApply``, and can sit in a Pipeline.

        Parameters
        ----------
        model : dict
            neuroHarmonize model.
        features : list of str or None, default=None
            Names of the feature columns, in the model's order; default
            ``x0, x1, ...``.
        site : str, default="site"
            Name of the site column.
        covariates : list of str or None, default=None
            Names of the covariate columns, in the model's order; default the
            names the model recorded.

        Returns
        -------
        ComBatHarmonizer
            Fitted estimator (``protect_target="none"``).
        """
        return from_neuroharmonize(
            cls, model, features=features, site=site, covariates=covariates
        )

    def to_neuroharmonize(self):
        """Export the fitted model as a neuroHarmonize model dict.

        ``neuroHarmonize.harmonizationApply(data, covars, model)`` then gives
        our ``transform`` output (to neuroHarmonize's float32 rounding of the
        covariates), with ``covars`` holding ``SITE`` and the numeric
        covariates. A protected target is folded into the grand mean at its
        training centre, as ``transform`` applies it. Categorical covariates
        and smooth terms are refused (neuroHarmonize cannot apply them from a
        dict of arrays).

        Returns
        -------
        model : dict
            For ``harmonizationApply`` or ``saveHarmonizationModel``.
        """
        check_is_fitted(self)
        return to_neuroharmonize(self)



def from_neuroharmonize(cls, model, *, features=None, site="site", covariates=None):
    """A fitted ``cls`` (ComBatHarmonizer) from a neuroHarmonize model dict.

    See :meth:`ComBatHarmonizer.from_neuroharmonize`.
    """
    if not isinstance(model, dict) or "B_hat" not in model:
        raise TypeError(
            "model must be the dict returned by neuroHarmonize's harmonizationLearn "
            "(or loaded by loadHarmonizationModel)."
        )
    smooth = model.get("smooth_model") or {}
    if smooth.get("perform_smoothing"):
        raise ValueError(
            "neuroHarmonize models with smooth_terms cannot be translated: they "
            "keep a statsmodels smoother, not its knots; refit with "
            "ComBatHarmonizer(smooth_terms=...)."
        )
    labels = np.asarray(model["SITE_labels"])
    n_sites = labels.size
    coef = np.asarray(model["B_hat"], dtype=np.float64)
    n_features = coef.shape[1]
    names = [c for c in model.get("Covariates", []) if c != "SITE"]
    n_cov = coef.shape[0] - n_sites
    if covariates is None:
        covariates = (
            names if len(names) == n_cov else [f"covariate{j}" for j in range(n_cov)]
        )
    covariates = list(covariates)
    if len(covariates) != n_cov:
        raise ValueError(
            f"the model has {n_cov} covariate(s) {names}; covariates= names "
            f"{len(covariates)}."
        )
    if features is None:
        features = [f"x{j}" for j in range(n_features)]
    features = list(features)
    if len(features) != n_features:
        raise ValueError(
            f"the model has {n_features} features; features= names {len(features)}."
        )
    ref_level = (model.get("info_dict") or {}).get("ref_level")
    est = cls(
        site=site,
        covariates=covariates or None,
        eb=bool(model.get("eb", True)),
        reference_site=None if ref_level is None else labels.tolist()[int(ref_level)],
        protect_target="none",
    )
    var_pooled = np.asarray(model["var_pooled"], dtype=np.float64).ravel()
    grand_mean = np.asarray(model["stand_mean"], dtype=np.float64)[:, 0]
    gamma_hat = np.asarray(model["gamma_hat"], dtype=np.float64)
    params = {
        "gamma_star": np.asarray(model["gamma_star"], dtype=np.float64),
        "delta_star": np.asarray(model["delta_star"], dtype=np.float64),
        "ok": np.isfinite(var_pooled) & (var_pooled > 0),
    }
    sizes = (model.get("info_dict") or {}).get("sample_per_batch")
    est.sites_ = labels
    est.site_counts_ = np.asarray(sizes if sizes is not None else np.zeros(n_sites))
    est.features_ = np.asarray(features, dtype=object)
    est.covariates_ = covariates
    est.covariate_levels_ = {}
    est._set_model(
        core.ComBatModel(
            coef=coef,
            n_sites=n_sites,
            grand_mean=grand_mean,
            var_pooled=var_pooled,
            gamma_hat=gamma_hat,
            delta_hat=np.asarray(model["delta_hat"], dtype=np.float64),
            gamma_star=params["gamma_star"],
            delta_star=params["delta_star"],
            priors={
                key: np.asarray(
                    model.get(key, np.full(n_sites, np.nan)), dtype=np.float64
                )
                for key in ("gamma_bar", "t2", "a_prior", "b_prior")
            },
            ok=params["ok"],
            degenerate=np.zeros(gamma_hat.shape, dtype=bool),
            ref_level=None if ref_level is None else int(ref_level),
        )
    )
    est.eb_ = est.eb
    est.spline_knots_ = []
    est.target_term_ = None
    est.target_columns_ = np.zeros(n_cov, dtype=bool)
    est.feature_names_in_ = np.asarray([*features, site, *covariates], dtype=object)
    est.n_features_in_ = len(est.feature_names_in_)
    est._ref_level = None if ref_level is None else int(ref_level)
    est._output_columns = np.asarray(features, dtype=object)
    est._feature_index = pd.Index(est.features_)
    est._layout = None
    return est


def to_neuroharmonize(est):
    """The neuroHarmonize model dict of a fitted ComBatHarmonizer.

    See :meth:`ComBatHarmonizer.to_neuroharmonize`.
    """
    if est.spline_knots_:
        raise ValueError(
            "a ComBat-GAM model (smooth_terms or protect_target='smooth') cannot be "
            "exported: neuroHarmonize applies smooth terms with its own statsmodels "
            "smoother."
        )
    if est.interactions:
        raise ValueError(
            "a model with interaction terms cannot be exported: give neuroHarmonize "
            "the product columns as covariates (and fit ours on them)."
        )
    if est.covariate_levels_:
        raise ValueError(
            f"categorical covariates {list(est.covariate_levels_)} cannot be "
            "exported: neuroHarmonize takes numeric covariates only; encode them "
            "as 0/1 columns before fitting."
        )
    if est._keeps_target_direction():
        raise ValueError(
            "a model whose transform keeps each row's estimated target effect out "
            "of the scale adjustment (target_scale='project') cannot be exported: "
            "neuroHarmonize applies one affine map per site. Fit with "
            "target_scale='centre' (or mean_only=True) to export it."
        )
    n_sites = est.sites_.size
    coef_cov = est.coef_[n_sites:]
    target = np.asarray(est.target_columns_, dtype=bool)
    grand_mean = est.grand_mean_.copy()
    if target.any():
        # transform gives the protected target its training centre: fold it
        # into the grand mean, which is what neuroHarmonize then applies
        grand_mean += est.target_term_.centre @ coef_cov[target]
    b_hat = np.vstack([est.coef_[:n_sites], coef_cov[~target]])
    gamma_star = est.gamma_star_.copy()
    delta_star = est.delta_star_.copy()
    ref_level = est._ref_level
    labels = est.sites_
    return {
        "SITE_labels": labels,
        "SITE_labels_train": labels,
        "Covariates": ["SITE", *est.covariates_],
        "B_hat": b_hat,
        "stand_mean": grand_mean[:, None],
        "var_pooled": est.var_pooled_[:, None],
        "gamma_star": gamma_star,
        "delta_star": delta_star,
        "gamma_hat": est.gamma_hat_.copy(),
        "delta_hat": est.delta_hat_.copy(),
        "gamma_bar": est.priors_["gamma_bar"],
        "t2": est.priors_["t2"],
        "a_prior": est.priors_["a_prior"],
        "b_prior": est.priors_["b_prior"],
        "eb": bool(est.eb_),
        "ref_batch": None if ref_level is None else labels.tolist()[ref_level],
        "info_dict": {
            "n_batch": n_sites,
            "batch_levels": np.arange(n_sites),
            "sample_per_batch": np.asarray(est.site_counts_, dtype=int),
            "ref_level": ref_level,
        },
        "smooth_model": {
            "perform_smoothing": False,
            "smooth_cols": [],
            "bsplines_constructor": None,
            "formula": None,
            "df_gam": None,
        },
    }
