"""The figure of a :class:`~sklearn_medprep.CohortReport`."""

import numpy as np
import pandas as pd

from ..utils._optional import import_optional
from ._plot import LABEL_SIZE, TICK_SIZE, TITLE_SIZE, _site_ticks, natural_order

__all__ = ["plot_cohort"]


def _colours(n):
    mpl = import_optional("matplotlib", "QC figures")

    cmap = mpl.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _legend(ax, title):
    ax.legend(
        title=title,
        fontsize=TICK_SIZE,
        title_fontsize=LABEL_SIZE,
        frameon=False,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
    )


def _counts_panel(ax, report, sites):
    counts = report.counts.drop(index="all", columns="all").loc[sites]
    x = np.arange(1, len(sites) + 1)
    bottom = np.zeros(len(sites))
    totals = counts.sum(axis=1).to_numpy(dtype=float)
    for colour, cls in zip(_colours(counts.shape[1]), counts.columns):
        values = counts[cls].to_numpy(dtype=float)
        ax.bar(x, values, bottom=bottom, color=colour, width=0.7, label=str(cls))
        if len(sites) <= 6:  # wide enough bars for "54 (82%)"
            share = values / np.maximum(totals, 1)
            for xi, b, v, p in zip(x, bottom, values, share):
                if v >= 0.06 * totals.max():
                    ax.text(
                        xi,
                        b + v / 2,
                        f"{int(v)} ({100 * p:.0f}%)",
                        ha="center",
                        va="center",
                        fontsize=TICK_SIZE,
                        color="white",
                    )
        bottom += values
    _site_ticks(ax, sites)
    ax.set_xlabel("site", fontsize=LABEL_SIZE)
    ax.set_ylabel("subjects", fontsize=LABEL_SIZE)
    ax.set_title(
        f"Subjects per site and {report.target}", fontsize=TITLE_SIZE, loc="left"
    )
    _legend(ax, report.target)


def _target_panel(ax, report, sites):
    frame = report._frame
    groups = [frame.loc[frame[report.site] == s, report.target] for s in sites]
    ax.boxplot([g.to_numpy(dtype=float) for g in groups], widths=0.6)
    _site_ticks(ax, sites)
    ax.set_xlabel("site", fontsize=LABEL_SIZE)
    ax.set_ylabel(report.target, fontsize=LABEL_SIZE)
    ax.set_title(f"{report.target} per site", fontsize=TITLE_SIZE, loc="left")


def _shortcut_panel(ax, report):
    short = report.shortcuts
    y = np.arange(len(short))[::-1]
    scores = short["score"].to_numpy(dtype=float)
    chance = float(short["chance"].iloc[0])
    margin = report.thresholds["shortcut_margin"]
    colours = [
        "tab:red" if s >= chance + margin else "tab:gray" for s in np.nan_to_num(scores)
    ]
    ax.barh(y, np.nan_to_num(scores), color=colours, height=0.6)
    for yi, s in zip(y, scores):
        ax.text(
            max(0.0, np.nan_to_num(s)) + 0.01,
            yi,
            "n/a" if np.isnan(s) else f"{s:.2f}",
            va="center",
            fontsize=TICK_SIZE,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 1},
        )
    ax.axvline(chance, color="black", ls="--", lw=1, label=f"chance ({chance:.2f})")
    ax.axvline(
        chance + margin,
        color="tab:red",
        ls=":",
        lw=1,
        label=f"flagged (red) from {chance + margin:.2f}",
    )
    ax.set_yticks(y, list(short.index), fontsize=TICK_SIZE)
    ax.set_xlim(min(0.0, np.nanmin(scores, initial=0.0)), 1.1)
    ax.set_xlabel(f"cross-validated {short['metric'].iloc[0]}", fontsize=LABEL_SIZE)
    ax.set_title(
        f"{report.target} predicted without images", fontsize=TITLE_SIZE, loc="left"
    )
    ax.tick_params(axis="x", labelsize=TICK_SIZE)
    ax.legend(
        fontsize=TICK_SIZE,
        frameon=False,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncols=2,
    )


def _variable_panel(ax, report, variable, sites):
    frame = report._frame.dropna(subset=[variable])
    test = report.associations.loc[(variable, report.site)]
    subtitle = f"{test['test']} p = {test['p_value']:.2g}"
    x = np.arange(1, len(sites) + 1)
    col = frame[variable]
    categorical = any(variable + "=" in c for c in report.summary.columns)
    if categorical:
        share = pd.crosstab(frame[report.site], col.astype(str), normalize="index")
        share = share.reindex(sites).fillna(0.0) * 100
        bottom = np.zeros(len(sites))
        levels = natural_order(share.columns)
        for colour, level in zip(_colours(len(levels)), levels):
            ax.bar(x, share[level], bottom=bottom, width=0.7, color=colour, label=level)
            bottom += share[level].to_numpy()
        ax.set_ylabel("% of subjects", fontsize=LABEL_SIZE)
        ax.set_ylim(0, 100)
        _legend(ax, variable)
    elif report.classification:
        classes = list(report.counts.columns.drop("all"))
        width = 0.8 / len(classes)
        for k, (colour, cls) in enumerate(zip(_colours(len(classes)), classes)):
            sub = frame[frame[report.target] == cls]
            data = [sub.loc[sub[report.site] == s, variable].to_numpy() for s in sites]
            pos = x - 0.4 + width * (k + 0.5)
            keep = [i for i, d in enumerate(data) if len(d)]
            parts = ax.boxplot(
                [data[i] for i in keep],
                positions=pos[keep],
                widths=width * 0.9,
                patch_artist=True,
                showfliers=False,
                medianprops={"color": "black"},
            )
            for patch in parts["boxes"]:
                patch.set_facecolor(colour)
                patch.set_alpha(0.8)
            ax.plot([], [], "s", color=colour, label=str(cls))
        ax.set_ylabel(variable, fontsize=LABEL_SIZE)
        _legend(ax, report.target)
    else:
        ax.boxplot(
            [frame.loc[frame[report.site] == s, variable].to_numpy() for s in sites],
            widths=0.6,
        )
        ax.set_ylabel(variable, fontsize=LABEL_SIZE)
    _site_ticks(ax, sites)
    ax.set_xlabel("site", fontsize=LABEL_SIZE)
    ax.tick_params(axis="y", labelsize=TICK_SIZE)
    ax.set_title(f"{variable} by site ({subtitle})", fontsize=TITLE_SIZE, loc="left")


def plot_cohort(report, figsize=None):
    """Draw a :class:`~sklearn_medprep.CohortReport` (see its ``plot``)."""
    plt = import_optional("matplotlib.pyplot", "QC figures")

    # the site column is categorical, its categories in natural order
    sites = list(report._frame[report.site].cat.categories)
    variables = list(dict.fromkeys([*report.covariates, *report.protected]))
    n_panels = 2 + len(variables)
    ncols = 2 if n_panels in (2, 4) else 3
    nrows = int(np.ceil(n_panels / ncols))
    width = max(4.6, 0.3 * len(sites) + 2.6)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=figsize or (width * ncols, 4.2 * nrows + 0.6),
        squeeze=False,
        layout="constrained",
    )
    axes = axes.ravel()
    if report.classification:
        _counts_panel(axes[0], report, sites)
    else:
        _target_panel(axes[0], report, sites)
    _shortcut_panel(axes[1], report)
    for ax, variable in zip(axes[2:], variables):
        _variable_panel(ax, report, variable, sites)
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    n_warn = len(report.warnings)
    fig.suptitle(
        f"Cohort audit: {report.n_subjects} subjects, {len(sites)} sites, target "
        f"{report.target!r}; {n_warn} warning{'s' * (n_warn != 1)}",
        fontsize=TITLE_SIZE + 1,
    )
    return fig
