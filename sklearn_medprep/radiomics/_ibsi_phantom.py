"""The IBSI-1 preset on the IBSI-1 digital phantom, feature by feature.

:func:`phantom_table` extracts ``RadiomicsExtractor(settings="ibsi")`` on the
phantom and compares each value with IBSI's consensus value;
``docs/user_guide/ibsi_phantom_table.rst.inc`` is its output
(:func:`phantom_table_rst`, written by ``benchmarks/ibsi_phantom.py --write``), and
a test keeps the two equal. It sits above the extractor; the preset itself
(:mod:`sklearn_medprep.radiomics._ibsi`) sits below it. Every feature of
:data:`~sklearn_medprep.radiomics._ibsi.IBSI_FEATURE_MAP` is a row: PyRadiomics'
(with IBSI's definitions where they differ) and the library's own
(``original_ibsi_*``, for what PyRadiomics lacks).
"""

import json
import math
from pathlib import Path

from ..utils._rst import generated_table
from ._extractor import RadiomicsExtractor
from ._ibsi import (
    _PYRADIOMICS_NAME,
    IBSI_FEATURE_MAP,
    PYRADIOMICS_FEATURE_MAP,
    ibsi_settings,
)

__all__ = ["phantom_table", "phantom_table_rst"]


def _half_unit(reference, digits=3):
    """Half a unit of the last of ``digits`` significant digits of ``reference``."""
    if reference == 0:
        return 0.0
    exponent = math.floor(math.log10(abs(reference))) - (digits - 1)
    return 0.5 * 10.0**exponent



def phantom_table(folder):
    """Extract the ``"ibsi"`` preset on the IBSI-1 digital phantom, compare with IBSI.

    A value passes when ``|value - reference| <= max(tolerance, half a unit of
    the reference's third significant digit)``: IBSI publishes consensus values
    rounded to 3 significant digits, many with tolerance 0, which then means
    "rounds to the published value".

    Parameters
    ----------
    folder : str or pathlib.Path
        Folder with ``phantom.nii.gz``, ``mask.nii.gz`` and
        ``ibsi1_reference.json`` (``{ibsi_name: {"ref": ..., "tol": ...}}``).

    Returns
    -------
    pandas.DataFrame
        One row per mapped feature (index: our feature name) with columns
        ``ibsi``, ``value``, ``reference``, ``tolerance``, ``passed``, and
        ``pyradiomics``, ``pyradiomics_passed``: the same settings with
        PyRadiomics' own definitions (plain kurtosis, axis lengths with ``N``);
        NaN and False for the features PyRadiomics does not compute.
    """
    import pandas as pd


    folder = Path(folder)
    reference = json.loads((folder / "ibsi1_reference.json").read_text())
    table = pd.DataFrame(
        {"image": [str(folder / "phantom.nii.gz")],
         "mask": [str(folder / "mask.nii.gz")]},
        index=["phantom"],
    )
    out = RadiomicsExtractor(settings="ibsi").fit_transform(table)
    # the same settings with PyRadiomics' own definitions, for comparison
    plain = RadiomicsExtractor(settings=ibsi_settings()).fit_transform(table)
    rows = []
    for name, ibsi in IBSI_FEATURE_MAP.items():
        value = float(out.loc["phantom", name])
        ref = float(reference[ibsi]["ref"])
        tol = float(reference[ibsi]["tol"])
        allowed = max(tol, _half_unit(ref))
        if name in PYRADIOMICS_FEATURE_MAP:
            pyradiomics = float(
                plain.loc["phantom", _PYRADIOMICS_NAME.get(name, name)]
            )
        else:
            pyradiomics = math.nan
        rows.append((name, ibsi, value, ref, tol, abs(value - ref) <= allowed,
                     pyradiomics, abs(pyradiomics - ref) <= allowed))
    return pd.DataFrame(
        rows,
        columns=["feature", "ibsi", "value", "reference", "tolerance", "passed",
                 "pyradiomics", "pyradiomics_passed"],
    ).set_index("feature")



def phantom_table_rst(table):
    """Format :func:`phantom_table`'s result as the reStructuredText of the docs.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`phantom_table`.

    Returns
    -------
    str
    """
    computed = int(table["pyradiomics"].notna().sum())
    summary = (
        f"**{int(table['passed'].sum())} of {len(table)} features within "
        f"tolerance**; PyRadiomics computes {computed} of them (with its own "
        "definitions and the same settings, "
        f"{int(table['pyradiomics_passed'].sum())} of {computed} within tolerance).")
    header = ['feature (``settings="ibsi"``)', "IBSI feature", "our value",
              "consensus value", "tolerance", "pass", "PyRadiomics' definition"]
    rows = ([f"``{name}``", f"``{row['ibsi']}``", f"{row['value']:.6g}",
             f"{row['reference']:.6g}", f"{row['tolerance']:.6g}",
             "yes" if row["passed"] else "**no**",
             "not computed" if math.isnan(row["pyradiomics"])
             else f"{row['pyradiomics']:.6g}"
             + ("" if row["pyradiomics_passed"] else " (**no**)")]
            for name, row in table.iterrows())
    return generated_table("benchmarks/ibsi_phantom.py", [summary], header, rows)
