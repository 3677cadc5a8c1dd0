"""Reading ComBat's data in blocks of columns (or rows), in their own layout.

A *getter* ``get(start, stop) -> ndarray (n_samples, stop - start)`` gives the
float64 data of a block of columns, so that the peak memory stays near the
size of the input and of the output whatever the number of features.
"""

import contextlib

import numpy as np

__all__ = [
    "SiteProbe",
    "blas_one_thread",
    "block_layout",
    "cache_blocks",
    "column_blocks",
]

_BLOCK_CELLS = 1_000_000  # cells per block of columns (8 MB of float64)
#: Cells per block of the fit's loop: a block and its buffer stay in a core's
#: cache, so that only the first of its passes reads memory.
_CACHE_CELLS = 1 << 16


def column_blocks(n_samples, n_features):
    """Yield ``(start, stop)`` of blocks of columns of bounded size."""
    width = max(1, _BLOCK_CELLS // max(n_samples, 1))
    for start in range(0, n_features, width):
        yield start, min(start + width, n_features)


def cache_blocks(n_samples, n_features, cells=None):
    """Yield ``(start, stop)`` of blocks of columns small enough for the cache."""
    cells = _CACHE_CELLS if cells is None else cells
    width = max(1, cells // max(n_samples, 1))
    for start in range(0, n_features, width):
        yield start, min(start + width, n_features)


class SiteProbe:
    """Which columns of a block take one value within each site, exactly.

    A few rows of each site (spread over the site) are compared first: two
    different finite values among them prove the column varies in that site;
    only the columns they leave in doubt are read in full over the site's
    rows (NaN aside, a column is constant in a site when its largest and
    smallest values are equal). A site whose rows are all probed is decided
    by the probe alone.

    Parameters
    ----------
    rows_by_site : list of ndarray of int
        Rows of each site.
    n_probe : int
        Rows compared per site.
    """

    def __init__(self, rows_by_site, n_probe=8):
        self.rows_by_site = rows_by_site
        picks = [
            np.unique(rows[np.linspace(0, rows.size - 1, n_probe).astype(int)])
            for rows in rows_by_site
        ]
        self.rows = np.concatenate(picks)
        self.offsets = np.cumsum([0] + [p.size for p in picks[:-1]])
        self.covered = np.array(
            [p.size == r.size for p, r in zip(picks, rows_by_site)]
        )

    def constant(self, block):
        """``(n_sites, n_columns)`` bool: the column is constant in the site."""
        return self.decide(block[self.rows], lambda cols: block[:, cols])

    def decide(self, probed, read):
        """:meth:`constant` from the probed rows ``block[self.rows]``.

        ``read(cols)`` returns every row of the columns ``cols``, read only
        for the columns the probe leaves in doubt.
        """
        with np.errstate(invalid="ignore"):
            high = np.fmax.reduceat(probed, self.offsets, axis=0)
            low = np.fmin.reduceat(probed, self.offsets, axis=0)
            out = high == low
            doubt = ~(high > low) & ~self.covered[:, None]
            cols = np.flatnonzero(doubt.any(axis=0))
            if cols.size:
                full = read(cols)
                for i in np.flatnonzero(doubt.any(axis=1)):
                    here = np.flatnonzero(doubt[i, cols])
                    sub = full[np.ix_(self.rows_by_site[i], here)]
                    out[i, cols[here]] = np.fmax.reduce(
                        sub, axis=0
                    ) == np.fmin.reduce(sub, axis=0)
        return out


#: Data size (cells) from which the block loops run BLAS on one thread.
_ONE_THREAD_CELLS = 10_000
_CONTROLLER = []  # threadpoolctl's controller, made once (it lists the libraries)


def blas_one_thread(n_cells):
    """Context: BLAS on one thread for the block loops (but the tiniest).

    Their products are skinny (inner dimension: the design's columns) and
    memory-bound; a second thread gains little, and waiting for it stalls on
    a loaded machine (even the products of a one-row transform). The switch
    is cheap with the controller made once; tables under
    ``_ONE_THREAD_CELLS`` skip it.
    """
    if n_cells < _ONE_THREAD_CELLS:
        return contextlib.nullcontext()
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


def _unchecked(get):
    """The getter without its bounds check, and the bound it checks.

    A getter of :func:`~._input.feature_getter` checks every block for
    infinite or overflowing cells; :func:`fit_combat` computes the per-site
    extremes anyway, so it reads the blocks unchecked and calls the checked
    getter (which raises, naming the cell) only when an extreme is out of
    bounds. Other getters are used as they are.
    """
    raw = getattr(get, "unchecked", None)
    if raw is None:
        return get, None
    return raw, get.limit


def block_layout(block):
    """Layout of an ``(n_samples, n_columns)`` block: ``"F"`` or ``"C"``.

    ``"F"`` when its columns are contiguous (a DataFrame's float block),
    ``"C"`` when its rows are (an ndarray, or a pandas block made from one
    without a copy).
    """
    return "F" if block.strides[0] < block.strides[1] else "C"
