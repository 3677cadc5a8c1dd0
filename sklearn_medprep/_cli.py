"""The ``sklearn-medprep`` command line (argparse subcommands).

``sklearn-medprep extract TABLE.csv -p PARAMS.yaml -o FEATURES.csv`` extracts
PyRadiomics features of every row of a CSV subject table with
:class:`~sklearn_medprep.RadiomicsExtractor`. The options follow PyRadiomics'
own command line where they overlap (``-p/--param``, ``-o/--out``,
``-j/--jobs``, ``-s/--setting key:value``, ``-f/--format``, ``--version``, and
the ``Image``/``Mask``/``Label`` columns of a PyRadiomics batch CSV).

Everything that can be checked is checked before any extraction: the table and
its columns, the settings (a parameter file's values that the flags override
are reported), the output format (from ``--format`` or the output's extension:
csv, parquet, json; anything else is refused) and that the output can be
written there. The output is written atomically, and only when the extraction
finished: a failed run leaves no file that could be mistaken for complete
results. Every warning raised during the run is printed.

Output files:

- An existing ``--out`` is refused before any extraction (earlier results
  are never lost by a typo); ``--force`` replaces it, atomically, only when the
  new extraction succeeded (a failed run leaves the old file as it was).
- Files are created with the permissions of the user's umask (``0644`` under
  the usual ``022``), as any other program's, not the ``0600`` of a temporary
  file.
- JSON is exact: every float is written with the shortest text that reads
  back the same float64 (Python's ``repr``), as in the CSV of the same run.
  JSON has no NaN or infinity: NaN is written ``null`` (read back as NaN by
  :func:`pandas.read_json`), and +/-infinity as ``1e999``/``-1e999``, numbers
  that every JSON reader parses as +/-infinity.
- A write that fails (a full disk, a folder that became read-only) exits 1
  with a message naming the file, and leaves nothing under its name.

Relative paths: one rule for every table the project reads or writes (see
:func:`~sklearn_medprep.read_manifest`): relative to the folder of the table.

Exit status: 0 success, 1 extraction error (the message names row, column and
file), 2 bad command line or bad input (table, columns, settings, output).
"""

import argparse
import importlib.util
import json
import math
import os
import sys
import tempfile
import warnings
from pathlib import Path

__all__ = ["main"]

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".json": "json"}


def _add_extract(subparsers):
    parser = subparsers.add_parser(
        "extract",
        help="PyRadiomics features of every row of a CSV subject table",
        description=(
            "Extract PyRadiomics features of every row of TABLE (a CSV with an "
            "image and a mask column, or a PyRadiomics batch CSV with Image and "
            "Mask columns; relative paths are resolved against the CSV's folder) "
            "and write them, with the other columns, to --out."
        ),
    )
    parser.add_argument("table", help="CSV subject table")
    parser.add_argument("-p", "--param", "--params", dest="params", default=None,
                        help="PyRadiomics parameter file (YAML or JSON)")
    parser.add_argument("-s", "--setting", action="append", default=[],
                        metavar="KEY:VALUE",
                        help="override one entry of the parameter file's "
                        "'setting' section (repeatable), e.g. binWidth:25")
    parser.add_argument("-o", "--out", required=True,
                        help="output file (.csv, .parquet or .json; JSON floats exact, "
                        "NaN as null, infinity as 1e999); created with your umask; "
                        "an existing file is refused unless --force")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing --out (atomically, and only "
                        "when the extraction succeeded); without it an existing "
                        "--out is refused before any extraction")
    parser.add_argument("-f", "--format", choices=sorted(set(FORMATS.values())),
                        default=None,
                        help="output format (default: from the extension of --out)")
    parser.add_argument("-j", "--jobs", "--n-jobs", dest="n_jobs", type=int,
                        default=1,
                        help="worker processes (default 1; -1 for all cores)")
    parser.add_argument("--image", default=None,
                        help="image column (default 'image', or 'Image')")
    parser.add_argument("--mask", default=None,
                        help="mask column (default 'mask', or 'Mask')")
    parser.add_argument("--label", default=None,
                        help="ROI label (an integer) or the name of a label column "
                        "(default: the 'Label' column of a batch CSV, else the "
                        "parameter file's setting label, else 1)")
    parser.add_argument("--index-col", default=None,
                        help="column holding the row ids (e.g. subject); without "
                        "it the output's index column is named 'row'")
    parser.add_argument("--on-error", choices=["raise", "nan"], default="raise",
                        help="stop at the first bad row (default), or give it NaN "
                        "features and list it in OUT.errors.csv")
    parser.add_argument("--memory", default=None,
                        help="cache folder (re-runs extract nothing twice)")
    parser.add_argument("--include-diagnostics", action="store_true",
                        help="add PyRadiomics' diagnostics columns")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_extract)
    return parser


def _say(kind, message):
    print(f"sklearn-medprep extract: {kind}: {message}", file=sys.stderr)


def output_format(path, fmt=None):
    """Return the output format of ``path``: ``fmt``, else from its extension.

    Parameters
    ----------
    path : str or pathlib.Path
        Output file.
    fmt : {"csv", "parquet", "json"} or None
        Explicit format.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        Unknown extension without ``fmt``, an extension contradicting ``fmt``,
        or parquet without pyarrow.

    Examples
    --------
    >>> from sklearn_medprep._cli import output_format
    >>> output_format("features.csv"), output_format("out.txt", "json")
    ('csv', 'json')
    >>> output_format("features.xlsx")
    Traceback (most recent call last):
    ...
    ValueError: cannot tell the output format of 'features.xlsx' from its \
extension: use .csv, .parquet or .json, or --format
    """
    suffix = Path(path).suffix.lower()
    from_suffix = FORMATS.get(suffix)
    if fmt is None:
        if from_suffix is None:
            raise ValueError(
                f"cannot tell the output format of {str(path)!r} from its "
                "extension: use .csv, .parquet or .json, or --format"
            )
        fmt = from_suffix
    elif from_suffix is not None and from_suffix != fmt:
        raise ValueError(
            f"--format {fmt} contradicts the extension of {str(path)!r} "
            f"({from_suffix}); use a matching extension"
        )
    if fmt == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise ValueError(
            "--format parquet needs the pyarrow package, which is not installed "
            '(pip install "sklearn-medprep[parquet]"); or write csv or json'
        )
    return fmt


def check_output(path, force=False):
    """Raise ``ValueError`` if ``path`` cannot be written (before any extraction).

    Parameters
    ----------
    path : str or pathlib.Path
        Output file.
    force : bool, default=False
        Whether an existing file may be replaced.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"--out {str(path)!r} is a folder; give a file name")
    if (path.exists() or path.is_symlink()) and not force:
        raise ValueError(
            f"--out {str(path)!r} exists; pass --force to replace it (replaced "
            "only when the new extraction succeeds), or choose another name"
        )
    parent = path.parent
    for ancestor in [parent, *parent.parents]:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise ValueError(
                    f"--out {str(path)!r} cannot be created: {str(ancestor)!r} "
                    "is a file, not a folder"
                )
            break
    try:
        parent.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.",
                                         suffix=".probe")
        os.close(handle)
        os.remove(probe)
    except OSError as exc:
        raise ValueError(f"--out {str(path)!r} cannot be written ({exc})") from exc


def _parse_value(text):
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def resolve_settings(params, overrides):
    """Return the settings of ``--param`` with ``--setting`` overrides applied.

    Parameters
    ----------
    params : str or None
        Parameter file.
    overrides : list of str
        ``KEY:VALUE`` texts (values parsed as YAML: ``25``, ``true``,
        ``[1, 2]``).

    Returns
    -------
    settings : dict
    notes : list of str
        One line per parameter-file value that an override changed.

    Examples
    --------
    >>> from sklearn_medprep._cli import resolve_settings
    >>> resolve_settings(None, ["binWidth:25", "force2D:true"])
    ({'setting': {'binWidth': 25, 'force2D': True}}, [])
    """
    from .radiomics._settings import load_settings

    settings = load_settings(params)
    section = settings.setdefault("setting", {}) if overrides else None
    notes = []
    for text in overrides:
        key, sep, value = text.partition(":")
        if not sep or not key.strip():
            raise ValueError(f"--setting {text!r}: expected KEY:VALUE")
        key, value = key.strip(), _parse_value(value.strip())
        if section is None:
            section = settings.setdefault("setting", {})
        if section is not None and key in section and section[key] != value:
            notes.append(
                f"the parameter file sets {key}={section[key]!r}; --setting "
                f"{text!r} overrides it with {value!r}"
            )
        section[key] = value
    return settings, notes


def _columns(args, header):
    """Image, mask and label columns from the flags or a PyRadiomics batch CSV."""
    image = args.image or ("Image" if "image" not in header and "Image" in header
                           else "image")
    mask = args.mask or ("Mask" if "mask" not in header and "Mask" in header
                         else "mask")
    return image, mask


def _label(args, header, settings, notes):
    file_label = (settings.get("setting") or {}).get("label")
    if args.label is not None:
        label = int(args.label) if args.label.lstrip("-").isdigit() else args.label
        if file_label is not None and isinstance(label, int) and label != file_label:
            notes.append(
                f"the parameter file sets label={file_label!r}; --label {label} "
                "overrides it"
            )
        return label
    if "Label" in header:
        return "Label"
    return int(file_label) if file_label is not None else 1


def _json_value(value, np, pd):
    """JSON text of one cell: floats exact (``repr``), NaN null, inf 1e999."""
    if value is None or value is pd.NA:
        return "null"
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if math.isnan(number):
            return "null"
        if math.isinf(number):
            return "1e999" if number > 0 else "-1e999"
        return float.__repr__(number)
    if isinstance(value, str):
        return json.dumps(value)
    try:
        if value != value:  # NaT and other missing values
            return "null"
    except (TypeError, ValueError):
        pass
    return json.dumps(str(value))


def to_json_text(frame):
    """Return the JSON text of ``frame``'s rows (records, index first), exact.

    Every float64 is written with Python's ``repr``, the shortest text that
    reads back the same float (pandas' ``to_json`` keeps at most 15 digits).
    JSON has no NaN or infinity: NaN (and other missing cells) is ``null``,
    +/-infinity ``1e999``/``-1e999`` (parsed as infinity by JSON readers).

    Parameters
    ----------
    frame : pandas.DataFrame

    Returns
    -------
    str

    Examples
    --------
    >>> import json, pandas as pd
    >>> from sklearn_medprep._cli import to_json_text
    >>> frame = pd.DataFrame({"x": [0.1 + 0.2, float("nan"), float("inf")]},
    ...                      index=pd.Index(["a", "b", "c"], name="row"))
    >>> print(to_json_text(frame), end="")
    [
     {"row": "a", "x": 0.30000000000000004},
     {"row": "b", "x": null},
     {"row": "c", "x": 1e999}
    ]
    >>> json.loads(to_json_text(frame))[2]["x"]
    inf
    """
    import numpy as np
    import pandas as pd

    table = frame.reset_index()
    keys = [json.dumps(str(name)) + ": " for name in table.columns]
    lines = []
    for row in table.itertuples(index=False, name=None):
        cells = ", ".join(key + _json_value(v, np, pd) for key, v in zip(keys, row))
        lines.append(" {" + cells + "}")
    return "[\n" + ",\n".join(lines) + ("\n]\n" if lines else "]\n")


def _write_atomically(frame, path, fmt, overwrite=True):
    """Write ``frame`` with the library's one writer (``io.write_atomically``).

    Temporary name, checked bytes, the user's umask mode, fsync, atomic
    rename; a failure (a full disk) is an ``OutputWriteError`` naming ``path``
    and leaves nothing under it. With ``overwrite=False`` an existing file is
    refused at the rename (a file created since :func:`check_output`).
    """
    from .io._write import write_atomically

    def write(tmp):
        if fmt == "csv":
            frame.to_csv(tmp, index=True)
        elif fmt == "parquet":
            frame.to_parquet(tmp, index=True)
        else:
            with open(tmp, "w", encoding="utf-8") as out:
                out.write(to_json_text(frame))

    return write_atomically(path, write, overwrite=overwrite)


def _extract(args, parser):
    import pandas as pd

    from .exceptions import SubjectTableError
    from .radiomics._extractor import RadiomicsExtractor
    from .table._manifest import read_manifest

    notes = []
    try:
        check_output(args.out, force=args.force)
        fmt = output_format(args.out, args.format)
        settings, notes = resolve_settings(args.params, args.setting)
        if not Path(args.table).is_file():
            raise FileNotFoundError(f"manifest not found: {args.table!r}")
        header = list(pd.read_csv(args.table, nrows=0).columns)
        image, mask = _columns(args, header)
        label = _label(args, header, settings, notes)
        table = read_manifest(args.table, image=image, mask=mask,
                              index_col=args.index_col, validate=False)
        if table.index.name is None:
            table.index.name = "row"
        extractor = RadiomicsExtractor(
            image=image, mask=mask, label=label, settings=settings or None,
            include_diagnostics=args.include_diagnostics, memory=args.memory,
            n_jobs=args.n_jobs, on_error=args.on_error, verbose=not args.quiet,
        )
        extractor._validate_params()
        from .radiomics._settings import validate_settings

        validate_settings(settings)
    except (OSError, ValueError, TypeError) as exc:
        parser.error(str(exc))
    for note in notes:
        _say("warning", note)
    caught = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            features = extractor.fit_transform(table)
    except (SubjectTableError, OSError, ValueError) as exc:
        _show(caught)
        _say("error", exc)
        print("no output written", file=sys.stderr)
        return 1
    _show(caught)
    errors = extractor.extraction_errors_
    errors_file = Path(f"{args.out}.errors.csv")
    try:
        if len(errors):
            _write_atomically(errors.set_index("row"), errors_file, "csv")
        elif errors_file.exists():
            errors_file.unlink()  # a stale list from an earlier run
        try:
            _write_atomically(features, args.out, fmt, overwrite=args.force)
        except OSError:
            if len(errors):  # no list of failed rows without its output
                errors_file.unlink(missing_ok=True)
            raise
    except OSError as exc:
        _say("error", exc)
        print("no output written", file=sys.stderr)
        return 1
    if len(errors):
        print(f"failed rows listed in {errors_file}", file=sys.stderr)
    print(f"wrote {len(features)} rows x {len(extractor.feature_names_)} "
          f"features to {args.out} ({fmt})", file=sys.stderr)
    return 0


def _third_party_deprecation(warning):
    """Whether ``warning`` is a deprecation notice about another package's code.

    E.g. pykwalify's ``load_module``: nothing the user of this command can act on.
    """
    if not issubclass(warning.category, (DeprecationWarning,
                                         PendingDeprecationWarning)):
        return False
    return Path(__file__).resolve().parent not in Path(
        str(warning.filename)).resolve().parents


def _show(caught):
    seen = set()
    for warning in caught or ():
        if _third_party_deprecation(warning):
            continue
        text = f"{warning.category.__name__}: {warning.message}"
        if text not in seen:
            seen.add(text)
            _say("warning", text)


def build_parser():
    """Return the argument parser of ``sklearn-medprep``.

    Returns
    -------
    argparse.ArgumentParser

    Examples
    --------
    >>> from sklearn_medprep._cli import build_parser
    >>> args = build_parser().parse_args(
    ...     ["extract", "t.csv", "--out", "f.csv", "--n-jobs", "2"])
    >>> args.command, args.n_jobs, args.on_error
    ('extract', 2, 'raise')
    """
    from ._version import __version__

    parser = argparse.ArgumentParser(
        prog="sklearn-medprep",
        description="Prepare medical images for machine learning.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version",
                        version=f"sklearn-medprep {__version__}"
                        + _pyradiomics_version())
    subparsers = parser.add_subparsers(dest="command", required=True)
    parsers = {"extract": _add_extract(subparsers)}
    parser.set_defaults(subparsers=parsers)
    return parser


def _pyradiomics_version():
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover
        return ""
    for name in ("pyradiomics", "pyradiomics-bhklab"):
        try:
            return f" (PyRadiomics {version(name)})"
        except PackageNotFoundError:
            continue
    return ""


def main(argv=None):
    """Run the command line; return the exit status.

    Parameters
    ----------
    argv : list of str or None, default=None
        Arguments (``sys.argv[1:]`` when None).

    Returns
    -------
    int
        0 on success, 1 on extraction error, 2 on bad input (argparse exits).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args, args.subparsers[args.command])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
