"""Reading ComBat's data in blocks of columns (or rows), in their own layout.

A *getter* ``get(start, stop) -> ndarray (n_samples, stop - start)`` gives the
float64 data of a block of columns, so that the peak memory stays near the
size of the input and of the output whatever the number of features.
"""

import contextlib

__all__ = ["blas_one_thread", "block_layout", "column_blocks"]

_BLOCK_CELLS = 1_000_000  # cells per block of columns (8 MB of float64)


def column_blocks(n_samples, n_features):
    """Yield ``(start, stop)`` of blocks of columns of bounded size."""
    width = max(1, _BLOCK_CELLS // max(n_samples, 1))
    for start in range(0, n_features, width):
        yield start, min(start + width, n_features)


#: Data size (cells) from which the block loops run BLAS on one thread.
_ONE_THREAD_CELLS = 1_000_000


def blas_one_thread(n_cells):
    """Context: BLAS on one thread for the block loops of a large table.

    Their products are skinny (inner dimension: the design's columns) and
    memory-bound; a second thread gains little, and waiting for it at every
    block stalls on a loaded machine. Small tables skip the switch (it costs
    milliseconds).
    """
    if n_cells < _ONE_THREAD_CELLS:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


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
