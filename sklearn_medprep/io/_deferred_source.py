"""What the I/O layer knows of an image computed on first read.

A deferred image (the output of :class:`~sklearn_medprep.TorchIOPreprocessor`)
is a TorchIO image whose reader runs the row's fitted transform when the image
is first read. The I/O layer (describing, reading, keying a cell) needs only the
interface below; the images layer implements it
(:class:`sklearn_medprep.images._deferred.DeferredReader`), so that I/O never
imports TorchIO estimators.
"""

__all__ = ["DeferredSource", "deferred_reader"]


class DeferredSource:
    """Base class of the TorchIO readers of deferred images.

    A subclass is a callable ``reader(path) -> (data, affine)`` as TorchIO
    expects, plus the two methods below.
    """

    def describe(self):
        """Return the source path (or None) for error messages."""
        raise NotImplementedError

    def content_key(self, key_of):
        """Return the content key of the image without computing it.

        Parameters
        ----------
        key_of : callable
            Content key of a source cell.

        Returns
        -------
        str
        """
        raise NotImplementedError


def deferred_reader(cell):
    """Return the :class:`DeferredSource` of a deferred image, or None.

    Parameters
    ----------
    cell : object
        A table cell.

    Returns
    -------
    DeferredSource or None
    """
    reader = getattr(cell, "reader", None)
    return reader if isinstance(reader, DeferredSource) else None
