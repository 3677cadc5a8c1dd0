"""Per-process memos that "forget as a fresh process would" must clear.

A module that keeps a memo (content keys, parsed paths) registers the function
that clears it; :func:`clear_memos` clears every memo of the modules imported so
far. The radiomics cache calls it, so that it never imports the images layer
only to clear that layer's memos.
"""

__all__ = ["clear_memos", "register_memo"]

_CLEARERS = []


def register_memo(clear):
    """Register ``clear`` (no arguments) and return it (usable as a decorator).

    Parameters
    ----------
    clear : callable

    Returns
    -------
    callable
    """
    _CLEARERS.append(clear)
    return clear


def clear_memos():
    """Clear every registered memo."""
    for clear in _CLEARERS:
        clear()
