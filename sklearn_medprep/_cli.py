"""The ``sklearn-medprep`` command line (argparse subcommands).

``sklearn-medprep extract TABLE.csv --params PARAMS.yaml --out FEATURES.csv``
extracts PyRadiomics features of every row of a CSV subject table with
:class:`~sklearn_medprep.RadiomicsExtractor`. The output file is written
atomically, and only when the extraction finished: a failed run leaves no file
that could be mistaken for complete results.

Exit status: 0 success, 1 extraction error (the message names row, column and
file), 2 bad command line or bad input (table, columns, settings).
"""

import argparse
import os
import sys
import tempfile
import warnings
from pathlib import Path

__all__ = ["main"]


def _add_extract(subparsers):
    parser = subparsers.add_parser(
        "extract",
        help="PyRadiomics features of every row of a CSV subject table",
        description=(
            "Extract PyRadiomics features of every row of TABLE (a CSV with an "
            "image and a mask column; relative paths are resolved against the "
            "CSV's folder) and write them, with the other columns, to --out."
        ),
    )
    parser.add_argument("table", help="CSV subject table")
    parser.add_argument("--params", default=None,
                        help="PyRadiomics parameter file (YAML or JSON)")
    parser.add_argument("--out", required=True, help="output CSV of features")
    parser.add_argument("--n-jobs", type=int, default=1,
                        help="worker processes (default 1; -1 for all cores)")
    parser.add_argument("--image", default="image", help="image column")
    parser.add_argument("--mask", default="mask", help="mask column")
    parser.add_argument("--label", default="1",
                        help="ROI label (an integer) or the name of a label column")
    parser.add_argument("--index-col", default=None,
                        help="column holding the row ids (e.g. subject)")
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


def _write_atomically(frame, path, **kwargs):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                   suffix=".part")
    os.close(handle)
    try:
        frame.to_csv(tmp, **kwargs)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _extract(args, parser):
    from ._radiomics import RadiomicsExtractor
    from ._table import read_manifest
    from .exceptions import MedprepWarning, SubjectTableError

    label = int(args.label) if args.label.lstrip("-").isdigit() else args.label
    try:
        table = read_manifest(args.table, image=args.image, mask=args.mask,
                              index_col=args.index_col, validate=False)
        extractor = RadiomicsExtractor(
            image=args.image, mask=args.mask, label=label, settings=args.params,
            include_diagnostics=args.include_diagnostics, memory=args.memory,
            n_jobs=args.n_jobs, on_error=args.on_error, verbose=not args.quiet,
        )
        extractor._validate_params()
        from ._radiomics_settings import validate_settings

        validate_settings(args.params)
    except (OSError, ValueError, TypeError) as exc:
        parser.error(str(exc))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", MedprepWarning)
            features = extractor.fit_transform(table)
    except (SubjectTableError, OSError, ValueError) as exc:
        print(f"sklearn-medprep extract: error: {exc}", file=sys.stderr)
        print("no output written", file=sys.stderr)
        return 1
    errors = extractor.extraction_errors_
    _write_atomically(features, args.out, index=True)
    errors_file = Path(f"{args.out}.errors.csv")
    if len(errors):
        _write_atomically(errors, errors_file, index=False)
        for warning in caught:
            print(f"sklearn-medprep extract: warning: {warning.message}",
                  file=sys.stderr)
        print(f"failed rows listed in {errors_file}", file=sys.stderr)
    elif errors_file.exists():
        errors_file.unlink()  # a stale list from an earlier run
    print(f"wrote {len(features)} rows x {len(extractor.feature_names_)} "
          f"features to {args.out}", file=sys.stderr)
    return 0


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
    parser = argparse.ArgumentParser(
        prog="sklearn-medprep",
        description="Prepare medical images for machine learning.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    parsers = {"extract": _add_extract(subparsers)}
    parser.set_defaults(subparsers=parsers)
    return parser


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
