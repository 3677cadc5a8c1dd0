"""How a radiomics cache entry's values are written and read back as JSON.

Reading never runs code: ``json.loads`` of the text, values rebuilt only as
floats, strings, tuples, dicts and numeric arrays.
"""

import json

import numpy as np

__all__ = ["NotNumber", "decode", "encode", "entry_values", "non_number"]


def encode(value):
    """Return ``value`` as JSON data, tagging tuples, dicts and arrays; or raise."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return float(value) if isinstance(value, float) else int(value)
    if isinstance(value, np.generic):
        return encode(value.item())
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return {"ndarray": value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, (tuple, list)):
        return {"tuple" if isinstance(value, tuple) else "list":
                [encode(v) for v in value]}
    if isinstance(value, dict):
        return {"dict": [[str(k), encode(v)] for k, v in value.items()]}
    raise TypeError(f"cannot cache a value of type {type(value).__name__}")


def decode(value):
    if isinstance(value, list):
        raise ValueError("untagged list")
    if not isinstance(value, dict):
        if isinstance(value, float) or value is None or isinstance(
            value, (bool, str, int)
        ):
            return value
        raise ValueError(f"unexpected {type(value).__name__}")
    if len(value) == 2 and "ndarray" in value:
        dtype = np.dtype(str(value["dtype"]))
        if dtype.kind not in "biuf":
            raise ValueError("non-numeric array")
        return np.asarray(value["ndarray"], dtype=dtype)
    if len(value) != 1:
        raise ValueError("unknown tag")
    (tag, data), = value.items()
    if tag == "tuple":
        return tuple(decode(v) for v in data)
    if tag == "list":
        return [decode(v) for v in data]
    if tag == "dict":
        return {str(k): decode(v) for k, v in data}
    raise ValueError(f"unknown tag {tag!r}")


def entry_values(text):
    """The ``[(name, value), ...]`` of an authenticated entry's bytes, or raise.

    A feature (a name not starting with ``diagnostics_``) must hold a number:
    the extractor puts it in a float matrix.
    """
    data = json.loads(text.partition(b"\n")[2])
    names, values = data["names"], data["values"]
    if len(names) != len(values) or not all(isinstance(n, str) for n in names):
        raise ValueError("malformed names/values")
    return list(zip(names, [
        v if type(v) is float else decode(v) for v in values
    ]))


class NotNumber(Exception):
    """A verified entry holding a non-number where the extractor wants one."""


def non_number(values):
    """Why a feature of ``values`` is not a number (None if all are).

    A feature is a name not starting with ``diagnostics_``: the extractor puts
    it in a float matrix.
    """
    for name, value in values:
        if type(value) is float or name.startswith("diagnostics_"):
            continue
        if isinstance(value, np.ndarray):
            if value.size == 1 and value.dtype.kind in "biuf":
                continue
        elif isinstance(value, (int, float)):  # bool is an int
            continue
        return f"feature {name!r} holds a non-number ({str(value)[:40]!r})"
    return None
