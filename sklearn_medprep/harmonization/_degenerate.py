"""Messages on what ComBat could not estimate (features, site/feature pairs)."""

import numpy as np

from ..exceptions import plain

__all__ = ["degenerate_messages"]


def degenerate_messages(model, names, labels, rows=None):
    """Messages on features left unharmonized and sites without spread.

    See :meth:`~._core.ComBatModel.degenerate_report`.
    """
    names = np.asarray(names, dtype=object)
    messages = []
    empty = model.empty if model.empty is not None else np.zeros(0, dtype=bool)
    if empty.any():
        for i in np.flatnonzero((empty & model.ok).any(axis=1)):
            feats = names[empty[i] & model.ok]
            at = "" if rows is None else _rows_text(rows[i])
            more = f" ... ({feats.size} features)" if feats.size > 5 else ""
            messages.append(
                f"{feats.size} feature(s) have no finite value at site "
                f"{plain(labels[i])!r}{at}: {plain(feats[:5])}{more}. Each "
                "is harmonized at the other sites from their rows alone (as "
                "if that site were absent for it), its cells at that site "
                "are returned as they were (NaN), and at transform its "
                "values at that site are returned unharmonized"
            )
    bad = ~model.ok
    if empty.any() and model.ref_level is not None:
        no_ref = bad & empty[model.ref_level]
        if no_ref.any():
            messages.append(
                f"{int(no_ref.sum())} feature(s) have no finite value at the "
                f"reference site {plain(labels[model.ref_level])!r} and are "
                f"returned unharmonized: {plain(names[no_ref][:5])}"
            )
            bad &= ~no_ref
    if bad.any():
        messages.append(
            f"{int(bad.sum())} feature(s) have no spread around the model "
            "(zero pooled residual variance) or cannot be estimated and are "
            f"returned unharmonized: {plain(names[bad][:5])}"
            f"{' ...' if bad.sum() > 5 else ''}"
        )
    if model.degenerate.any():
        sites_at, feats_at = np.nonzero(model.degenerate)
        pairs = [
            f"{plain(names[j])!r} at site {plain(labels[i])!r}"
            for i, j in zip(sites_at[:5], feats_at[:5])
        ]
        more = f" and {sites_at.size - 5} more" if sites_at.size > 5 else ""
        messages.append(
            f"{sites_at.size} feature/site pair(s) where the feature is "
            f"constant within the site: {', '.join(pairs)}{more}. Their "
            "location is harmonized at that site (and the other sites are "
            "harmonized as usual); their scale at that site is left "
            "unchanged (delta* = 1), since it cannot be estimated from a "
            "constant"
        )
    return messages



def _rows_text(rows):
    """`` (rows 'a', 'b', ... of n)`` for a message."""
    rows = list(rows)
    more = f" ... ({len(rows)} rows)" if len(rows) > 5 else ""
    return f" (rows {', '.join(repr(plain(r)) for r in rows[:5])}{more})"
