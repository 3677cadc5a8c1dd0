"""Survival targets: scikit-survival's structured ``y`` of (event, time) per row.

scikit-survival (``sksurv.util.Surv.from_arrays``) passes the target of a
survival model as a NumPy structured array with two fields, a boolean event
indicator (True: the event was observed; False: the row is censored) and the
observed time. The steps before the model read it as follows:

- splitters stratify on the event indicator (``stratify_y=True``);
- ComBat protects the event indicator, as two classes (``protect_target``
  ``"auto"`` or ``"classes"``); the time is not protected (see the user
  guide, "Survival targets");
- the target-proxy checks check every column against each field (a column
  equal to the event indicator or to the time is refused).

This module only reads the array; scikit-survival is not imported.
"""

import numpy as np

__all__ = ["is_structured", "stratification_labels", "survival_fields"]


def is_structured(y):
    """Whether ``y`` is a NumPy structured array (named fields).

    Parameters
    ----------
    y : object

    Returns
    -------
    bool
    """
    dtype = getattr(y, "dtype", None)
    return isinstance(y, np.ndarray) and dtype is not None and dtype.names is not None


def survival_fields(y):
    """Return ``(event, time, event_name, time_name)`` of a survival target.

    Parameters
    ----------
    y : object
        A target; a structured array with one boolean field (the event
        indicator) and one numeric field (the time) is a survival target.

    Returns
    -------
    tuple or None
        ``event`` (bool ndarray), ``time`` (float64 ndarray) and the two field
        names; None when ``y`` is not structured.

    Raises
    ------
    ValueError
        ``y`` is structured but not (event, time), naming its fields.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_medprep.utils._survival import survival_fields
    >>> y = np.array([(True, 5.0), (False, 8.5)],
    ...              dtype=[("event", bool), ("time", float)])
    >>> event, time, *names = survival_fields(y)
    >>> event.tolist(), time.tolist(), names
    ([True, False], [5.0, 8.5], ['event', 'time'])
    >>> survival_fields(np.array([1, 0])) is None
    True
    """
    if not is_structured(y):
        return None
    names = y.dtype.names
    kinds = [y.dtype[name].kind for name in names]
    if len(names) == 2 and sorted(kinds)[0] == "b" and sorted(kinds)[1] in "iuf":
        event_name = names[kinds.index("b")]
        time_name = names[1 - kinds.index("b")]
        event = np.asarray(y[event_name], dtype=bool).ravel()
        time = np.asarray(y[time_name], dtype=np.float64).ravel()
        return event, time, event_name, time_name
    fields = ", ".join(f"{n!r} ({y.dtype[n]})" for n in names)
    raise ValueError(
        f"y is a structured array with fields {fields}; the structured target "
        "understood is scikit-survival's survival target: two fields, a boolean "
        "event indicator and a numeric time (sksurv.util.Surv.from_arrays)"
    )


def stratification_labels(y):
    """Labels a splitter stratifies on: the event indicator of a survival ``y``.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        A target.

    Returns
    -------
    ndarray of shape (n_samples,) or None
        The event indicator of a survival target; None for any other ``y``
        (the caller stratifies on ``y`` itself).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_medprep.utils._survival import stratification_labels
    >>> y = np.array([(True, 5.0), (False, 8.5)],
    ...              dtype=[("event", bool), ("time", float)])
    >>> stratification_labels(y).tolist()
    [True, False]
    """
    fields = survival_fields(y)
    return None if fields is None else fields[0]
