"""Quality control of harmonization: how much site signal is left."""

import numpy as np
import pandas as pd
from scipy import stats

from .exceptions import SubjectTableError

__all__ = ["site_effect_report", "site_predictability", "plot_harmonization"]


def _site_and_features(table, site, features):
    if isinstance(site, str):
        if not isinstance(table, pd.DataFrame) or site not in table.columns:
            raise SubjectTableError("site column not found", column=site)
        sites = table[site].to_numpy()
    else:
        sites = np.asarray(site)
        if sites.shape != (len(table),):
            raise ValueError(
                f"site must be a column name or one label per row ({len(table)})."
            )
    frame = pd.DataFrame(table) if not isinstance(table, pd.DataFrame) else table
    site_name = site if isinstance(site, str) else None
    if features is None:
        features = [
            c
            for c in frame.columns
            if c != site_name
            and pd.api.types.is_numeric_dtype(frame[c])
            and not pd.api.types.is_bool_dtype(frame[c])
        ]
    return frame[list(features)].to_numpy(dtype=np.float64), sites, list(features)


def _anova(values, sites):
    """Per-column one-way ANOVA over sites, NaN cells left out."""
    labels, codes = np.unique(sites, return_inverse=True)
    finite = ~np.isnan(values)
    x = np.where(finite, values, 0.0)
    onehot = np.zeros((len(sites), labels.size))
    onehot[np.arange(len(sites)), codes] = 1.0
    n_k = onehot.T @ finite  # sites x features
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_k = (onehot.T @ x) / n_k
        n = n_k.sum(axis=0)
        grand = (onehot.T @ x).sum(axis=0) / n
        ss_between = np.nansum(n_k * (mean_k - grand) ** 2, axis=0)
        centred = np.where(finite, values - mean_k[codes], 0.0)
        ss_within = (centred**2).sum(axis=0)
        k = (n_k > 0).sum(axis=0)
        f = (ss_between / (k - 1)) / (ss_within / (n - k))
        p = stats.f.sf(f, k - 1, n - k)
        between_var = ss_between / n
    return f, p, between_var


def site_effect_report(before, after, site, features=None):
    """Per-feature site effect before and after harmonization.

    Parameters
    ----------
    before : pandas.DataFrame
        Features before harmonization (with the site column when ``site`` is a
        column name).
    after : pandas.DataFrame
        The same rows after harmonization (same index).
    site : str or array-like of shape (n_samples,)
        Site column of ``before`` or the site of each row.
    features : list of str or None, default=None
        Features to report; ``None`` takes the numeric columns of ``after``
        other than the site.

    Returns
    -------
    report : pandas.DataFrame
        Indexed by feature: ``F_before``, ``p_before``, ``F_after``,
        ``p_after`` (one-way ANOVA over sites) and ``between_var_ratio``, the
        between-site variance (of the site means) after over before.

    Examples
    --------
    >>> from sklearn_medprep import ComBatHarmonizer, site_effect_report
    >>> from sklearn_medprep.datasets import make_multisite_features
    >>> df = make_multisite_features(n_subjects=90, n_features=3, random_state=0)
    >>> after = ComBatHarmonizer(covariates=["age"]).fit_transform(
    ...     df.drop(columns=["y", "sex"]))
    >>> report = site_effect_report(df, after, "site")
    >>> list(report.columns)
    ['F_before', 'p_before', 'F_after', 'p_after', 'between_var_ratio']
    >>> bool((report["F_after"] < report["F_before"]).all())
    True
    """
    if isinstance(site, str):
        sites = _site_and_features(before, site, [])[1]
    else:
        sites = np.asarray(site)
    if features is None:
        features = _site_and_features(after, sites, None)[2]
        features = [c for c in features if not isinstance(site, str) or c != site]
    b, _, _ = _site_and_features(before, sites, features)
    a, _, _ = _site_and_features(after, sites, features)
    if len(before) != len(after):
        raise ValueError("before and after must have the same rows.")
    f_b, p_b, v_b = _anova(b, sites)
    f_a, p_a, v_a = _anova(a, sites)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = v_a / v_b
    return pd.DataFrame(
        {
            "F_before": f_b,
            "p_before": p_b,
            "F_after": f_a,
            "p_after": p_a,
            "between_var_ratio": ratio,
        },
        index=pd.Index(features, name="feature"),
    )


def site_predictability(X, site, features=None, *, cv=5, random_state=0):
    """Cross-validated balanced accuracy of predicting the site from features.

    A standardized multinomial logistic regression predicts the site; after a
    good harmonization the score falls towards chance (``1 / n_sites``). NaN
    cells are imputed with the training-fold mean.

    Parameters
    ----------
    X : pandas.DataFrame or array-like
        Features (and the site column when ``site`` is a name).
    site : str or array-like of shape (n_samples,)
        Site column or labels.
    features : list of str or None, default=None
        Columns to use; ``None`` takes the numeric columns other than the site.
    cv : int or cross-validation generator, default=5
        Stratified by site when an int.
    random_state : int, default=0
        Seed of the fold shuffle.

    Returns
    -------
    score : float
        Mean balanced accuracy over folds.

    Examples
    --------
    >>> from sklearn_medprep import site_predictability
    >>> from sklearn_medprep.datasets import make_multisite_features
    >>> df = make_multisite_features(n_subjects=90, n_features=5, site_effect=2,
    ...                              random_state=0)
    >>> site_predictability(df.drop(columns=["y", "age", "sex"]), "site") > 0.6
    True
    """
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    values, sites, _ = _site_and_features(X, site, features)
    if isinstance(cv, int):
        cv = StratifiedKFold(cv, shuffle=True, random_state=random_state)
    model = make_pipeline(
        SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=1000)
    )
    scores = cross_val_score(model, values, sites, cv=cv, scoring="balanced_accuracy")
    return float(np.mean(scores))


def plot_harmonization(
    before, after, site, features=None, *, n_features=3, figsize=None
):
    """Plot feature distributions and a PCA by site, before and after.

    Parameters
    ----------
    before, after : pandas.DataFrame
        Same rows before and after harmonization.
    site : str or array-like
        Site column of ``before`` or the labels.
    features : list of str or None, default=None
        Features to use (all numeric columns of ``after`` by default); the
        first ``n_features`` get a box plot per site.
    n_features : int, default=3
        Number of features with a distribution panel.
    figsize : tuple or None, default=None
        Figure size.

    Returns
    -------
    fig : matplotlib.figure.Figure
        Two rows (before, after): box plots per site, then PCA scores
        coloured by site.
    """
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    if isinstance(site, str):
        sites = _site_and_features(before, site, [])[1]
    else:
        sites = np.asarray(site)
    if features is None:
        features = [
            c
            for c in _site_and_features(after, sites, None)[2]
            if not isinstance(site, str) or c != site
        ]
    shown = features[:n_features]
    labels = np.unique(sites)
    fig, axes = plt.subplots(
        2,
        len(shown) + 1,
        figsize=figsize or (3.2 * (len(shown) + 1), 6),
        squeeze=False,
    )
    pca = None
    for row, (name, table) in enumerate([("before", before), ("after", after)]):
        values, _, _ = _site_and_features(table, sites, features)
        for j, feat in enumerate(shown):
            ax = axes[row, j]
            col = values[:, j]
            ax.boxplot([col[(sites == s) & ~np.isnan(col)] for s in labels])
            ax.set_xticks(
                range(1, labels.size + 1),
                [str(s) for s in labels],
                rotation=90,
                fontsize=7,
            )
            ax.set_title(f"{feat} ({name})", fontsize=9)
        filled = np.where(np.isnan(values), np.nanmean(values, axis=0), values)
        filled = (filled - filled.mean(axis=0)) / (filled.std(axis=0) + 1e-12)
        if pca is None:
            pca = PCA(n_components=2).fit(filled)
        scores = pca.transform(filled)
        ax = axes[row, -1]
        for s in labels:
            mask = sites == s
            ax.scatter(scores[mask, 0], scores[mask, 1], s=8, label=str(s))
        ax.set_title(f"PCA by site ({name}; axes of 'before')", fontsize=9)
    if labels.size <= 12:
        axes[0, -1].legend(fontsize=6)
    fig.tight_layout()
    return fig
