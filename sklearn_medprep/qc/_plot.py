"""Quality-control figures of harmonization, readable for 2 to 30+ sites.

Every figure answers one question a practitioner asks after harmonizing:

* :func:`plot_site_features`: do the features most affected by site (ranked as
  in :func:`site_effect_report`) still differ between sites? Before and after
  on the same y scale.
* :func:`plot_site_effects`: how much site effect is left in every feature?
  The ANOVA F statistic of each feature before against after.
* :func:`plot_pca_by_site`: do the subjects still cluster by site? PCA scores
  coloured by site, the explained variance on the axes.
* :func:`plot_harmonization`: the three together.

Sites are shown in natural order (``site_2`` before ``site_10``), each with one
colour and marker kept across panels, and one legend per figure.
"""


import numpy as np
import pandas as pd

from ..table._checks import align_rows
from ..utils._optional import import_optional
from ._plot_style import (
    LABEL_SIZE,
    TICK_SIZE,
    TITLE_SIZE,
    _adjusted,
    _box_by_site,
    _legend_columns,
    _people,
    _predictability_text,
    _site_styles,
    _site_ticks,
    _wrap_name,
    natural_order,
)
from ._site_effects import _site_and_features, site_effect_report

__all__ = [
    "natural_order",
    "plot_harmonization",
    "plot_pca_by_site",
    "plot_site_effects",
    "plot_site_features",
]

def _sites_of(table, site):
    if isinstance(site, str):

        return _site_and_features(table, site, [])[1]
    sites = np.asarray(site)
    if sites.shape != (len(table),):
        raise ValueError(
            f"site must be a column name or one label per row ({len(table)})."
        )
    return sites


def _default_features(table, site, sites, covariates=()):

    return [
        c
        for c in _site_and_features(table, sites, None)[2]
        if (not isinstance(site, str) or c != site) and c not in (covariates or ())
    ]


def _new_axes(ax, figsize):
    plt = import_optional("matplotlib.pyplot", "QC figures")

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax.figure, ax


def plot_pca_by_site(
    table,
    site,
    features=None,
    *,
    covariates=None,
    ax=None,
    title="PCA of the features, by site",
    legend=True,
    figsize=(6.0, 5.0),
):
    """Scatter the first two principal components, coloured by site.

    The features are standardized (NaN cells filled with the column mean)
    before the PCA; the axes give the share of variance each component
    explains.

    Parameters
    ----------
    table : pandas.DataFrame
        Features (and the site column when ``site`` is a name).
    site : str or array-like of shape (n_samples,)
        Site column of ``table`` or the site of each row.
    features : list of str or None, default=None
        Columns to use; ``None`` takes the numeric columns other than the
        site and the covariates.
    covariates : list of str or None, default=None
        Columns left out of the default ``features``.
    ax : matplotlib.axes.Axes or None, default=None
        Axes to draw on; a new figure when None.
    title : str, default="PCA of the features, by site"
        Axes title (the PCA is of the features as they are, whatever
        ``covariates``).
    legend : bool, default=True
        Draw a legend of the sites (on the right of the axes).
    figsize : tuple, default=(6.0, 5.0)
        Size of the new figure (ignored with ``ax``).

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure holding the axes.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn_medprep import plot_pca_by_site
    >>> from sklearn_medprep.datasets import make_multisite_features
    >>> df = make_multisite_features(60, 5, random_state=0)
    >>> fig = plot_pca_by_site(df.drop(columns="y"), "site", covariates=["age", "sex"])
    >>> fig.axes[0].get_xlabel()
    'PC1 (34.1% of variance)'
    """
    from sklearn.decomposition import PCA


    sites = _sites_of(table, site)
    if features is None:
        features = _default_features(table, site, sites, covariates)
    values = _site_and_features(table, sites, features)[0]
    if values.shape[1] < 2:
        raise ValueError("a PCA by site needs at least 2 feature columns.")
    filled = np.where(np.isnan(values), np.nanmean(values, axis=0), values)
    filled = (filled - filled.mean(axis=0)) / (filled.std(axis=0) + 1e-12)
    pca = PCA(n_components=2).fit(filled)
    scores = pca.transform(filled)
    ratio = pca.explained_variance_ratio_
    fig, ax = _new_axes(ax, figsize)
    labels = natural_order(sites)
    styles = _site_styles(labels)
    size = 30 if len(sites) <= 300 else 12
    for s in labels:
        mask = sites == s
        colour, marker = styles[s]
        ax.scatter(
            scores[mask, 0],
            scores[mask, 1],
            s=size,
            color=colour,
            marker=marker,
            alpha=0.8,
            linewidths=0,
            label=f"{s} (n={int(mask.sum())})",
        )
    ax.set_xlabel(f"PC1 ({100 * ratio[0]:.1f}% of variance)", fontsize=LABEL_SIZE)
    ax.set_ylabel(f"PC2 ({100 * ratio[1]:.1f}% of variance)", fontsize=LABEL_SIZE)
    ax.tick_params(labelsize=TICK_SIZE)
    ax.set_title(title, fontsize=TITLE_SIZE)
    if legend:
        ax.legend(
            title="site",
            fontsize=TICK_SIZE,
            title_fontsize=LABEL_SIZE,
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
            ncols=_legend_columns(len(labels)),
            frameon=False,
            markerscale=1.3,
        )
    return fig


def plot_site_effects(
    before,
    after,
    site,
    features=None,
    *,
    covariates=None,
    report=None,
    n_labels=4,
    ax=None,
    figsize=(6.0, 5.0),
):
    """Site effect of every feature: ANOVA F before against after harmonization.

    One point per feature, on log-log axes. Points under the diagonal lost
    site effect; the dashed lines mark the F value of ANOVA p = 0.05, under
    which a feature shows no detectable site difference. The ``n_labels``
    features most affected before are named.

    Parameters
    ----------
    before, after : pandas.DataFrame
        The same rows before and after harmonization, as for
        :func:`site_effect_report`.
    site : str or array-like of shape (n_samples,)
        Site column of ``before`` or the site of each row.
    features : list of str or None, default=None
        Features to show (see :func:`site_effect_report`).
    covariates : list of str or None, default=None
        Covariates to adjust for (see :func:`site_effect_report`); the title
        says which. With ``report``, those it was computed with.
    report : pandas.DataFrame or None, default=None
        A :func:`site_effect_report` already computed (skips the computation).
    n_labels : int, default=4
        Number of features named on the figure.
    ax : matplotlib.axes.Axes or None, default=None
        Axes to draw on; a new figure when None.
    figsize : tuple, default=(6.0, 5.0)
        Size of the new figure (ignored with ``ax``).

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure holding the axes.
    """
    from scipy import stats


    sites = _sites_of(before, site)
    if report is None:
        report = site_effect_report(
            before, after, site, features, covariates=covariates
        )
    fig, ax = _new_axes(ax, figsize)
    f_b = report["F_before"].to_numpy(dtype=float)
    f_a = report["F_after"].to_numpy(dtype=float)
    finite = np.isfinite(f_b) & np.isfinite(f_a)
    floor = 1e-3
    x, y = np.maximum(f_b, floor), np.maximum(f_a, floor)
    # black, not a site colour: one point per feature, not per subject
    ax.scatter(x[finite], y[finite], s=18, color="black", alpha=0.6, linewidths=0)
    lo = min(x[finite].min(initial=1.0), y[finite].min(initial=1.0)) / 2
    hi = max(x[finite].max(initial=10.0), y[finite].max(initial=10.0)) * 2
    ax.plot([lo, hi], [lo, hi], color="0.4", lw=1, label="no change (after = before)")
    n_sites, n = len(np.unique(sites)), len(sites)
    if n_sites > 1 and n > n_sites:
        critical = float(stats.f.isf(0.05, n_sites - 1, n - n_sites))
        ax.axhline(critical, color="tab:red", ls="--", lw=1, label="ANOVA p = 0.05")
        ax.axvline(critical, color="tab:red", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    order = np.argsort(-np.where(finite, f_b, -np.inf))[: max(0, n_labels)]
    # The most affected features are named in a column in the upper left (an
    # empty region: after > before is rare), with a line to their point, so
    # that names of nearby points never overlap.
    for rank, i in enumerate(i for i in order if finite[i]):
        ax.annotate(
            str(report.index[i]),
            (x[i], y[i]),
            xytext=(0.03, 0.80 - 0.075 * rank),
            textcoords="axes fraction",
            fontsize=TICK_SIZE - 1,
            arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.6},
        )
    ax.set_xlabel("site effect before (ANOVA F over sites)", fontsize=LABEL_SIZE)
    ax.set_ylabel("site effect after (ANOVA F over sites)", fontsize=LABEL_SIZE)
    n_before = int((report["p_before"] < 0.05).sum())
    n_after = int((report["p_after"] < 0.05).sum())
    ax.set_title(
        f"Site effect per feature, ANOVA {_adjusted(covariates)}:\n"
        f"p < 0.05 in {n_before} before, {n_after} after, of {len(report)}",
        fontsize=TITLE_SIZE,
    )
    ax.tick_params(labelsize=TICK_SIZE)
    ax.legend(fontsize=TICK_SIZE, loc="upper left", frameon=False)
    return fig


def plot_site_features(
    before,
    after,
    site,
    features=None,
    *,
    n_features=3,
    covariates=None,
    report=None,
    axes=None,
    figsize=None,
):
    """Box plots per site of the features most affected by site, before and after.

    The features are ranked by their ANOVA F over sites before harmonization,
    as in :func:`site_effect_report`; each is shown before (top row) and after
    (bottom row) on the same y scale, one box per site in natural order.

    Parameters
    ----------
    before, after : pandas.DataFrame
        The same rows before and after harmonization.
    site : str or array-like of shape (n_samples,)
        Site column of ``before`` or the site of each row.
    features : list of str or None, default=None
        Candidate features (see :func:`site_effect_report`).
    n_features : int, default=3
        Number of features shown.
    covariates : list of str or None, default=None
        Covariates adjusted for in the ranking and the F values of the titles
        (see :func:`site_effect_report`); the boxes show the features as they
        are. With ``report``, those it was computed with.
    report : pandas.DataFrame or None, default=None
        A :func:`site_effect_report` already computed.
    axes : array of matplotlib.axes.Axes of shape (2, n_features) or None
        Axes to draw on; a new figure when None.
    figsize : tuple or None, default=None
        Size of the new figure.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure holding the axes.
    """
    plt = import_optional("matplotlib.pyplot", "QC figures")

    sites = _sites_of(before, site)
    if isinstance(after, pd.DataFrame) and isinstance(before, pd.DataFrame):

        after = align_rows(after, before.index, what="after", reference="before")
    if report is None:
        report = site_effect_report(
            before, after, site, features, covariates=covariates
        )
    ranked = report["F_before"].sort_values(ascending=False, na_position="last")
    shown = list(ranked.index[:n_features])
    labels = natural_order(sites)
    styles = _site_styles(labels)
    if axes is None:
        width = max(3.2, 0.28 * len(labels) + 1.2)
        fig, axes = plt.subplots(
            2,
            len(shown),
            figsize=figsize or (width * len(shown), 6.5),
            squeeze=False,
            layout="constrained",
        )
    axes = np.asarray(axes).reshape(2, len(shown))
    fig = axes[0, 0].figure
    for j, feat in enumerate(shown):
        b = _site_and_features(before, sites, [feat])[0][:, 0]
        a = _site_and_features(after, sites, [feat])[0][:, 0]
        for row, (name, values, stat) in enumerate(
            [("before", b, "F_before"), ("after", a, "F_after")]
        ):
            ax = axes[row, j]
            _box_by_site(ax, values, sites, labels, styles)
            _site_ticks(ax, labels)
            f = _people(report.loc[feat, stat])
            ax.set_title(
                f"{_wrap_name(feat)}\n{name} (F = {f}, {_adjusted(covariates)})",
                fontsize=TITLE_SIZE,
            )
            ax.set_ylabel(f"value {name}", fontsize=LABEL_SIZE)
            ax.tick_params(axis="y", labelsize=TICK_SIZE)
            ax.set_xlabel("site", fontsize=LABEL_SIZE)
        finite = np.concatenate([b[np.isfinite(b)], a[np.isfinite(a)]])
        if finite.size:
            pad = 0.05 * (finite.max() - finite.min() or 1.0)
            for row in range(2):
                axes[row, j].set_ylim(finite.min() - pad, finite.max() + pad)
    return fig


def plot_harmonization(
    before,
    after,
    site,
    features=None,
    *,
    n_features=3,
    covariates=None,
    predictability=None,
    figsize=None,
):
    """One figure answering "is the site effect gone?", before and after.

    Three parts: box plots per site of the ``n_features`` features most
    affected by site (ranked by :func:`site_effect_report`, before and after on
    one y scale, see :func:`plot_site_features`); the PCA scores by site before
    and after, each with its explained variance (:func:`plot_pca_by_site`); and
    the site effect of every feature, before against after
    (:func:`plot_site_effects`). Each title says what its test is adjusted
    for; one legend, beside the PCA panels, names the sites in natural order.

    Parameters
    ----------
    before, after : pandas.DataFrame
        Same rows before and after harmonization (rows pair by index label).
    site : str or array-like
        Site column of ``before`` or the labels.
    features : list of str or None, default=None
        Features to use (the numeric columns of ``after`` other than the site
        and the covariates by default).
    n_features : int, default=3
        Number of most site-affected features with a box-plot panel.
    covariates : list of str or None, default=None
        Covariates (columns of ``before``) to adjust the site-effect tests
        for: the box-plot ranking and F values and the per-feature panel (see
        :func:`site_effect_report`); left out of the PCA, which is of the
        features as they are. Pass those of the report you print beside the
        figure, so that both give the same counts.
    predictability : dict or None, default=None
        Site-predictability scores to print under the legend, e.g.
        ``{"before": site_predictability(...), "after":
        site_predictability(..., harmonizer=...)}``: each score with its
        chance level, permutation interval and verdict (see
        :func:`site_predictability`); a score below its interval is marked
        "OVER-CORRECTION" in red.
    figsize : tuple or None, default=None
        Figure size (inches); by default it grows with the number of sites.

    Returns
    -------
    fig : matplotlib.figure.Figure
        Top: the box plots (up to 15 sites, one column per feature, before
        on top of after; with more sites, one row per feature, before left
        of after). Bottom: the per-feature site effect, the PCA (before,
        after) and the legend of sites.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn_medprep import ComBatHarmonizer, plot_harmonization
    >>> from sklearn_medprep.datasets import make_multisite_features
    >>> df = make_multisite_features(90, 6, random_state=0).drop(columns="y")
    >>> after = ComBatHarmonizer(covariates=["age", "sex"]).fit_transform(df)
    >>> fig = plot_harmonization(df, after, "site", n_features=2)
    >>> print(fig.axes[0].get_title())
    f005
    before (F = 58, unadjusted)
    """
    plt = import_optional("matplotlib.pyplot", "QC figures")
    sites = _sites_of(before, site)
    if isinstance(after, pd.DataFrame) and isinstance(before, pd.DataFrame):
        after = align_rows(after, before.index, what="after", reference="before")
    covariates = [covariates] if isinstance(covariates, str) else covariates
    if features is None:
        features = _default_features(after, site, sites, covariates)
    report = site_effect_report(before, after, sites, features, covariates=covariates)
    labels = natural_order(sites)
    n_shown = min(n_features, len(features))
    # Top band: the box plots; bottom band: the two PCAs, the per-feature site
    # effect and the legend of sites. Widths grow with the number of sites.
    box_width = max(3.6, 0.26 * len(labels) + 1.2)
    legend_width = 1.7 * _legend_columns(len(labels))
    bottom_widths = [4.6, 4.2, 4.2, legend_width]
    # Up to 15 sites the features sit side by side (before on top, after
    # below); with more sites each feature gets a row (before | after), so the
    # figure stays about 16 inches wide.
    wide = len(labels) > 15
    if wide:
        box_width = max(3.6, 0.2 * len(labels) + 1.2)
        top_width, top_height = 2 * box_width, 3.4 * n_shown
    else:
        top_width, top_height = box_width * n_shown, 6.2
    width = max(top_width, sum(bottom_widths))
    height = (top_height if n_shown else 0.0) + 4.6
    fig = plt.figure(figsize=figsize or (width, height), layout="constrained")
    if n_shown:
        top, bottom = fig.subfigures(2, 1, height_ratios=[top_height, 4.6])
        if wide:
            box_axes = top.subplots(n_shown, 2, squeeze=False).T
        else:
            box_axes = top.subplots(2, n_shown, squeeze=False)
        plot_site_features(
            before,
            after,
            sites,
            features,
            n_features=n_shown,
            covariates=covariates,
            report=report,
            axes=box_axes,
        )
    else:
        bottom = fig
    # the per-feature panel (one colour) left, the site legend right of the
    # PCA panels it belongs to; created in the order PCA, PCA, per-feature
    grid = bottom.add_gridspec(1, 4, width_ratios=bottom_widths)
    pca_axes = [bottom.add_subplot(grid[0, 1]), bottom.add_subplot(grid[0, 2])]
    not_adjusted = " (not adjusted)" if covariates else ""
    for ax, (name, table) in zip(pca_axes, [("before", before), ("after", after)]):
        plot_pca_by_site(
            table,
            sites,
            features,
            ax=ax,
            title=f"PCA by site, {name}{not_adjusted}",
            legend=False,
        )
    effect_ax = bottom.add_subplot(grid[0, 0])
    plot_site_effects(
        before, after, sites, covariates=covariates, report=report, ax=effect_ax
    )
    legend_ax = bottom.add_subplot(grid[0, 3])
    legend_ax.axis("off")
    handles, names = pca_axes[0].get_legend_handles_labels()
    legend_ax.legend(
        handles,
        names,
        title="site",
        loc="upper left",
        fontsize=TICK_SIZE,
        title_fontsize=LABEL_SIZE,
        ncols=_legend_columns(len(labels)),
        frameon=False,
        markerscale=1.3,
    )
    if predictability:
        _predictability_text(legend_ax, predictability)
    # on the top subfigure when there is one: constrained layout makes room
    (top if n_shown else fig).suptitle(
        f"Harmonization QC: {len(features)} features, {len(labels)} sites, "
        f"{len(sites)} subjects",
        fontsize=TITLE_SIZE + 1,
    )
    return fig
