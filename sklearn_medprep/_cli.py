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

Relative paths: one rule for every table the project reads or writes (see
:func:`~sklearn_medprep.read_manifest`): relative to the folder of the table.

Exit status: 0 success, 1 extraction error (the message names row, column and
file), 2 bad command line or bad input (table, columns, settings, output).
"""

import argparse
import importlib.util
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
                        help="output file (.csv, .parquet or .json)")
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
            "(pip install pyarrow); or write csv or json"
        )
    return fmt


def check_output(path):
    """Raise ``ValueError`` if ``path`` cannot be written (before any extraction).

    Parameters
    ----------
    path : str or pathlib.Path
        Output file.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"--out {str(path)!r} is a folder; give a file name")
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


def _write_atomically(frame, path, fmt):
    # the library's one writer: temporary name, checked, umask mode, fsync,
    # atomic rename; a full disk is an OutputWriteError and no file
    from .io._write import write_atomically

    def write(tmp):
        if fmt == "csv":
            frame.to_csv(tmp, index=True)
        elif fmt == "parquet":
            frame.to_parquet(tmp, index=True)
        else:
            frame.reset_index().to_json(tmp, orient="records", indent=1,
                                        double_precision=15)

    return write_atomically(path, write)


def _extract(args, parser):
    import pandas as pd

    from .exceptions import SubjectTableError
    from .radiomics._extractor import RadiomicsExtractor
    from .table._manifest import read_manifest

    notes = []
    try:
        check_output(args.out)
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
    _write_atomically(features, args.out, fmt)
    errors_file = Path(f"{args.out}.errors.csv")
    if len(errors):
        _write_atomically(errors.set_index("row"), errors_file, "csv")
        print(f"failed rows listed in {errors_file}", file=sys.stderr)
    elif errors_file.exists():
        errors_file.unlink()  # a stale list from an earlier run
    print(f"wrote {len(features)} rows x {len(extractor.feature_names_)} "
          f"features to {args.out} ({fmt})", file=sys.stderr)
    return 0


def _show(caught):
    seen = set()
    for warning in caught or ():
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
