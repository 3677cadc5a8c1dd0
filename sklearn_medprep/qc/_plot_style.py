"""What every QC figure shares: font sizes, site order, colours, ticks, wording.

Kept apart from :mod:`._plot` (the figures) so that each stays short.
"""

import re

import numpy as np
import pandas as pd

from ..utils._optional import import_optional

#: Font sizes (points) used by every QC figure: readable at 100% zoom.
TITLE_SIZE = 11
LABEL_SIZE = 10
TICK_SIZE = 9
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")


def natural_order(labels):
    """Unique labels sorted in natural order: ``site_2`` before ``site_10``.

    Parameters
    ----------
    labels : array-like
        Labels (any type; compared through ``str``, runs of digits as integers).

    Returns
    -------
    ordered : list
        The unique labels, in natural order.

    Examples
    --------
    >>> from sklearn_medprep.qc._plot import natural_order
    >>> natural_order(["site_10", "site_2", "site_1", "site_2"])
    ['site_1', 'site_2', 'site_10']
    """

    def key(label):
        parts = re.split(r"(\d+)", str(label))
        return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts]

    return sorted(pd.unique(pd.Series(np.asarray(labels, dtype=object))), key=key)


def _site_styles(labels):
    """One (colour, marker) per site, distinct for up to 100 sites."""
    mpl = import_optional("matplotlib", "QC figures")

    n = len(labels)
    if n <= 10:
        colours = [mpl.colormaps["tab10"](i) for i in range(n)]
        markers = ["o"] * n
    else:
        # 10 colours x 10 markers: two sites share a colour only with a
        # different marker (pale colours of tab20 are hard to see).
        colours = [mpl.colormaps["tab10"](i % 10) for i in range(n)]
        markers = [_MARKERS[(i // 10) % len(_MARKERS)] for i in range(n)]
    return {label: (c, m) for label, c, m in zip(labels, colours, markers)}


def _people(value):
    """A statistic rounded for people: 1,234 / 58 / 3.5 / 0.42 / < 0.01."""
    value = float(value)
    if not np.isfinite(value):
        return "n/a"
    if 0 < value < 0.005:
        return "< 0.01"
    if abs(value) >= 10:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 1 else f"{value:.2f}"


def _adjusted(covariates):
    """What a panel's site-effect test is adjusted for, in words."""
    covariates = [covariates] if isinstance(covariates, str) else covariates
    if not covariates:
        return "unadjusted"
    return "adjusted for " + ", ".join(str(c) for c in covariates)


def _legend_columns(n_sites):
    """Legend columns so that a column holds at most 20 sites."""
    return max(1, int(np.ceil(n_sites / 20)))


def _site_ticks(ax, labels, axis="x"):
    """Site names as tick labels, rotated and thinned out when there are many."""
    n = len(labels)
    positions = np.arange(1, n + 1)
    step = 1 if n <= 40 else int(np.ceil(n / 40))
    shown = [str(s) if i % step == 0 else "" for i, s in enumerate(labels)]
    rotation = 0 if n <= 4 and max(len(s) for s in shown) <= 10 else 90
    if axis == "x":
        ax.set_xticks(positions, shown, rotation=rotation, fontsize=TICK_SIZE)
        ax.set_xlim(0.4, n + 0.6)
    else:
        ax.set_yticks(positions, shown, fontsize=TICK_SIZE)


def _wrap_name(name, width=36):
    """Break a long feature name after underscores into lines of ``width``."""
    lines, line = [], ""
    for part in re.split(r"(?<=_)", str(name)):
        if line and len(line) + len(part) > width:
            lines.append(line)
            line = ""
        line += part
    return "\n".join([*lines, line])


def _box_by_site(ax, values, sites, labels, styles):
    groups = [values[(sites == s) & ~np.isnan(values)] for s in labels]
    parts = ax.boxplot(
        groups,
        positions=np.arange(1, len(labels) + 1),
        widths=0.6,
        patch_artist=True,
        showfliers=len(labels) <= 15,
        flierprops={"markersize": 3},
        medianprops={"color": "black"},
    )
    for patch, s in zip(parts["boxes"], labels):
        patch.set_facecolor(styles[s][0])
        patch.set_alpha(0.75)


def _predictability_text(ax, scores):
    """Site predictability with chance, interval and verdict, under the legend."""
    lines, over = ["site predictability", "(balanced accuracy)"], False
    for name, score in scores.items():
        line = f"{name}: {float(score):.2f}"
        chance = getattr(score, "chance", None)
        if chance is not None:
            line += f", chance {chance:.2f}"
        interval = getattr(score, "null_interval", None)
        if interval is not None:
            line += f"\n  permuted {interval[0]:.2f}-{interval[1]:.2f}: "
            verdict = score.verdict
            if verdict.startswith("below chance"):
                verdict, over = "OVER-CORRECTION", True
            line += verdict
        lines.append(line)
    ax.text(
        0.0,
        0.0,
        "\n".join(lines),
        transform=ax.transAxes,
        va="bottom",
        ha="left",
        fontsize=TICK_SIZE,
        color="tab:red" if over else "black",
    )
