"""Quality control of harmonization: how much site signal is left."""

import numpy as np
import pandas as pd
from scipy import stats

from ..exceptions import SubjectTableError
from ..table._checks import align_rows, is_numeric_column, numeric_columns

__all__ = ["site_effect_report"]


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
    if features is None:  # the one rule of "numeric" (table._checks)
        features = numeric_columns(
            frame, exclude=[site_name] if site_name is not None else []
        )
    else:
        features = list(features)
        for name in features:
            if name not in frame.columns:
                raise SubjectTableError("feature column not found", column=name)
            if not is_numeric_column(frame[name], name=name):
                raise SubjectTableError(
                    f"feature column has non-numeric dtype {frame[name].dtype}",
                    column=name,
                )
    return frame[list(features)].to_numpy(dtype=np.float64), sites, list(features)


def _covariate_design(table, covariates):
    """Design matrix (intercept + covariates) and the rows with all covariates.

    Numeric columns enter as they are; other columns (strings, categories,
    booleans) are one-hot encoded dropping their first level.
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError("covariates need a pandas DataFrame holding those columns.")
    covariates = [covariates] if isinstance(covariates, str) else list(covariates)
    blocks = [np.ones((len(table), 1))]
    complete = np.ones(len(table), dtype=bool)
    for name in covariates:
        if name not in table.columns:
            raise SubjectTableError("covariate column not found", column=name)
        col = table[name]
        complete &= col.notna().to_numpy()
        if is_numeric_column(col, name=name):
            blocks.append(col.to_numpy(dtype=np.float64)[:, None])
        else:
            dummies = pd.get_dummies(col, drop_first=True, dtype=np.float64)
            blocks.append(dummies.to_numpy())
    design = np.hstack(blocks)
    return np.where(complete[:, None], design, 0.0), complete


def _residualize(values, design, complete):
    """Residuals of each column on ``design`` (OLS), NaN cells left out.

    Each column is fitted on its own non-missing rows with complete
    covariates; the other cells of the result are NaN.
    """
    out = np.full(values.shape, np.nan)
    rows_used = ~np.isnan(values) & complete[:, None]
    if values.shape[1] == 0:
        return out
    # Columns sharing the same missing-cell pattern are solved together.
    patterns, inverse = np.unique(rows_used.T, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).ravel()
    for k, rows in enumerate(patterns):
        if not rows.any():
            continue
        cols = np.flatnonzero(inverse == k)
        y = values[np.ix_(rows, cols)]
        beta = np.linalg.lstsq(design[rows], y, rcond=None)[0]
        out[np.ix_(rows, cols)] = y - design[rows] @ beta
    return out


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


def site_effect_report(before, after, site, features=None, *, covariates=None):
    """Per-feature site effect before and after harmonization.

    Parameters
    ----------
    before : pandas.DataFrame
        Features before harmonization (with the site column when ``site`` is a
        column name).
    after : pandas.DataFrame
        The same rows after harmonization: the same unique index labels as
        ``before``, in any order (rows pair by label).
    site : str or array-like of shape (n_samples,)
        Site column of ``before`` or the site of each row (in the row order
        of ``before``).
    features : list of str or None, default=None
        Features to report; ``None`` takes the numeric columns of ``after``
        other than the site and the covariates.
    covariates : list of str or None, default=None
        Columns of ``before`` (numeric, or categorical/string, one-hot
        encoded dropping the first level) to adjust for. When given, every
        feature, before and after, is replaced by its residuals from an
        ordinary least-squares fit on an intercept and the covariates (NaN
        cells, and rows with a missing covariate, left out per feature)
        before the ANOVA. The covariates of ``after`` are taken from the
        same rows of ``before``, since :class:`ComBatHarmonizer` drops its
        covariate columns by default. ``None`` reports the raw features.

        Adjust for the covariates given to ComBat whenever they differ
        between sites (e.g. older subjects at one site): ComBat estimates and
        preserves the covariate effects, so the site means of the harmonized
        features still differ by the covariate effect, and the unadjusted
        F statistic after ComBat can exceed the one before, as if
        harmonization had made the site effect worse. Once the covariates are
        regressed out, the F statistic measures the site effect that is left.

    Returns
    -------
    report : pandas.DataFrame
        Indexed by feature: ``F_before``, ``p_before``, ``F_after``,
        ``p_after`` (one-way ANOVA over sites, of the covariate residuals when
        ``covariates`` is given) and ``between_var_ratio``, the between-site
        variance (of the site means) after over before.

    See Also
    --------
    site_predictability : Cross-validated site prediction from the features.

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

    With site and age confounded, adjust for the covariates ComBat protected:

    >>> after = ComBatHarmonizer(covariates=["age", "sex"]).fit_transform(
    ...     df.drop(columns="y"))
    >>> adjusted = site_effect_report(df, after, "site", covariates=["age", "sex"])
    >>> bool((adjusted["F_after"] < adjusted["F_before"]).all())
    True
    """
    if isinstance(site, str):
        sites = _site_and_features(before, site, [])[1]
    else:
        sites = np.asarray(site)
    if len(before) != len(after):
        raise ValueError("before and after must have the same rows.")
    if isinstance(after, pd.DataFrame) and isinstance(before, pd.DataFrame):
        after = align_rows(after, before.index, what="after", reference="before")
    if covariates is not None:
        covariates = [covariates] if isinstance(covariates, str) else list(covariates)
    if features is None:
        features = _site_and_features(after, sites, None)[2]
        features = [
            c
            for c in features
            if (not isinstance(site, str) or c != site) and c not in (covariates or ())
        ]
    b, _, _ = _site_and_features(before, sites, features)
    a, _, _ = _site_and_features(after, sites, features)
    if covariates is not None:
        design, complete = _covariate_design(before, covariates)
        b = _residualize(b, design, complete)
        a = _residualize(a, design, complete)
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
