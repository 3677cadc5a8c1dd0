"""Plain-language findings of the cohort audit (see :func:`cohort_report`)."""

from dataclasses import dataclass

import pandas as pd

from ._plot import natural_order

__all__ = ["Finding"]


@dataclass(frozen=True)
class Finding:
    """One plain-language finding of a :class:`CohortReport`.

    Attributes
    ----------
    code : str
        Stable identifier (e.g. ``"site_label_confounding"``), for programs.
    severity : {"warning", "note"}
        ``"warning"``: a model can be misled or an estimate is unreliable;
        ``"note"``: worth knowing (pass the covariate to ComBat, report it).
    message : str
        The finding in plain language, with the numbers and the threshold.
    """

    code: str
    severity: str
    message: str

    def __str__(self):
        return f"[{self.severity}] {self.message}"


def _findings_site_label(report_rows, counts, th, classification, site, target):
    out = []
    row = report_rows[(target, site)]
    if classification:
        strong = row["effect_size"] >= th["confounding_v"]
        what = f"Cramér's V = {row['effect_size']:.2f}"
        rule = f"V >= {th['confounding_v']}"
    else:
        strong = row["effect_size"] >= th["confounding_effect"]
        what = f"epsilon^2 = {row['effect_size']:.2f}"
        rule = f"epsilon^2 >= {th['confounding_effect']}"
    if strong and row["p_value"] < th["alpha"]:
        if classification:
            share = counts.drop(index="all", columns="all").div(
                counts["all"].drop(index="all"), axis=0
            )
            cls = share.columns[-1]
            spread = ", ".join(f"{s}: {100 * v:.0f}%" for s, v in share[cls].items())
            detail = f"share of {target}={cls} by site: {spread}"
        else:
            detail = "the target's distribution differs between sites"
        out.append(
            Finding(
                "site_label_confounding",
                "warning",
                f"The label is confounded with the site ({detail}; {what}, "
                f"{row['test']} p = {row['p_value']:.2g}; flagged when {rule} and "
                f"p < {th['alpha']}). A model can score by recognising the site "
                "(scanner) instead of the disease: validate with site-aware "
                "splits (SiteStratifiedKFold, LeaveOneSiteOut), harmonize inside "
                "the folds with the target protected, and compare with the "
                "score from site alone below.",
            )
        )
    return out


def _small_site_findings(small, th):
    if not len(small):
        return []
    sizes = ", ".join(f"{s}: {int(n)}" for s, n in small.items())
    return [
        Finding(
            "small_site",
            "warning",
            f"Small sites ({sizes}; flagged under {th['min_site_size']} subjects): "
            "ComBat's per-site mean and variance are estimated from few subjects, "
            "and a site-stratified split leaves even fewer in each training fold.",
        )
    ]


def _class_findings(counts, th, site, target):
    out = []
    cells = counts.drop(index="all", columns="all")
    totals = counts.loc["all"].drop("all")
    share = totals / totals.sum()
    if share.min() < th["minority_fraction"]:
        cls = share.idxmin()
        out.append(
            Finding(
                "class_imbalance",
                "warning",
                f"Class imbalance: {target}={cls} is {100 * share.min():.0f}% of the "
                f"subjects ({int(totals[cls])} of {int(totals.sum())}; flagged under "
                f"{100 * th['minority_fraction']:.0f}%). Accuracy is misleading: "
                "score with balanced accuracy or ROC AUC, and stratify the folds.",
            )
        )
    empty = [(s, c) for s in cells.index for c in cells.columns if cells.loc[s, c] == 0]
    if empty:
        pairs = ", ".join(f"{s} has no {target}={c}" for s, c in empty)
        out.append(
            Finding(
                "site_without_class",
                "warning",
                f"{pairs}: at such a site the site alone gives the label, and "
                "ComBat cannot separate site from label there.",
            )
        )
    small = [
        (s, c, int(cells.loc[s, c]))
        for s in cells.index
        for c in cells.columns
        if 0 < cells.loc[s, c] < th["min_cell"]
    ]
    if small:
        pairs = ", ".join(f"{s} x {target}={c}: {n}" for s, c, n in small)
        out.append(
            Finding(
                "small_site_class_cell",
                "note",
                f"Few subjects in some site x class cells ({pairs}; flagged under "
                f"{th['min_cell']}): per-site results for those classes are noisy.",
            )
        )
    out += _small_site_findings(
        counts["all"].drop("all")[counts["all"].drop("all") < th["min_site_size"]], th
    )
    return out


def _representation(frame, protected, kinds, target, classification, site):
    rows = []
    for v in protected:
        col = frame[v]
        if not kinds[v]:
            col = pd.qcut(col, 4, duplicates="drop").astype(str)
            col = col.where(frame[v].notna())
        col = col.astype(object).where(col.notna())
        for level in natural_order(col.dropna()):
            member = (col == level).to_numpy()
            row = {
                "attribute": v,
                "group": str(level),
                "n": int(member.sum()),
                "fraction": float(member.mean()),
                "min_per_site": int(
                    pd.Series(member).groupby(frame[site].to_numpy()).sum().min()
                ),
            }
            if classification:
                per_class = pd.Series(member).groupby(frame[target].to_numpy()).sum()
                for cls, n in per_class.items():
                    row[f"n {target}={cls}"] = int(n)
            rows.append(row)
    if not rows:
        index = pd.MultiIndex.from_arrays([[], []], names=["attribute", "group"])
        return pd.DataFrame(columns=["n", "fraction", "min_per_site"], index=index)
    return pd.DataFrame(rows).set_index(["attribute", "group"])


def _representation_findings(representation, th, classification):
    out = []
    class_cols = [c for c in representation.columns if c.startswith("n ")]
    for (attribute, group), row in representation.iterrows():
        problems = []
        if row["fraction"] < th["min_group_fraction"]:
            problems.append(
                f"{100 * row['fraction']:.0f}% of the subjects ({int(row['n'])}; "
                f"flagged under {100 * th['min_group_fraction']:.0f}%)"
            )
        absent = [c[2:] for c in class_cols if row[c] == 0]
        if classification and absent:
            problems.append(f"no subject with {', '.join(absent)}")
        if problems:
            out.append(
                Finding(
                    "under_represented_group",
                    "warning",
                    f"{attribute}={group} is under-represented: "
                    f"{'; '.join(problems)}. A model's performance for this group "
                    "is not estimated reliably: report it per group.",
                )
            )
    return out
