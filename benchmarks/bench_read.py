"""Benchmark reading one image file: ours (checked) against a plain SimpleITK read.

For each file type (NRRD gzip, .nii.gz, .nii, compressed and raw MHA) made from
PyRadiomics' lung1 and brain1 images (../shared/data/pyradiomics), this times

- ``sitk.ReadImage(path)``: ITK alone, which reads a truncated NIfTI file
  silently and turns NaN voxels into 0;
- ``load_image(path)``: the library's read, with the integrity checks
  (``sklearn_medprep.io._onepass``: one ITK decode, checked against the
  stream's own CRC-32/Adler-32 and length);
- ``check_file(path)`` + ``sitk.ReadImage``: the previous release's read (the
  stream decompressed in Python to count its bytes, then by ITK);
- the one-pass checks alone on an image ITK already read (header, trailer,
  checksum of the voxels): the part of ours that a loaded machine's noise in
  the two read times can hide (uncompressed files: ``check_file``, the header
  and a ``stat``).

The four alternate round by round (best of ``--rounds``), with ITK and the
BLAS/OpenMP pools pinned to one thread, and each result is compared voxel for
voxel and geometry for geometry with ITK's. Printed: ours / SimpleITK,
previous / SimpleITK and checks / SimpleITK per file.

Usage: python benchmarks/bench_read.py [--rounds N]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

# measure the checkout this script belongs to, not an installed copy
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

import sklearn_medprep  # noqa: E402
from sklearn_medprep import load_image  # noqa: E402
from sklearn_medprep.io import _onepass  # noqa: E402
from sklearn_medprep.io._integrity import check_file, restore_nifti_nonfinite  # noqa: E402

SHARED = Path(
    os.environ.get("MEDPREP_SHARED_DATA")
    or Path(__file__).resolve().parents[2] / "shared" / "data"
) / "pyradiomics"


def previous(path):
    """The read before one-pass checking: check_file, ReadImage, NaN restore."""
    check_file(path)
    image = sitk.ReadImage(path)
    if path.endswith((".nii", ".nii.gz")):
        image = restore_nifti_nonfinite(path, image)
    return image


def checks_only(path, image):
    """The one-pass checks alone, on an image ITK already read: header, trailer,
    checksum of the voxels (what ours adds to a SimpleITK read)."""
    stream = _onepass._stream_of(path)
    trailer = _onepass._trailer(stream) if stream is not None else None
    if trailer is None:
        return check_file(path)  # uncompressed: the header and a stat
    return _onepass._matches(image, stream, trailer[0], trailer[1])


def same(a, b):
    return (
        a.GetPixelID() == b.GetPixelID()
        and a.GetSize() == b.GetSize()
        and a.GetSpacing() == b.GetSpacing()
        and a.GetOrigin() == b.GetOrigin()
        and a.GetDirection() == b.GetDirection()
        and np.array_equal(sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b))
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true",
                        help="one round, lung1 only (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 1
    if not SHARED.is_dir():
        print(f"{SHARED} absent: nothing to measure")
        return
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    print(f"package {Path(sklearn_medprep.__file__).parent}; best of {args.rounds} "
          "rounds, the four alternating; ITK and BLAS pinned to 1 thread; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"  {'file':28s} {'SimpleITK':>9s} {'ours':>9s} {'previous':>9s}  "
          "ours/SimpleITK  previous/SimpleITK  checks/SimpleITK  identical")
    with tempfile.TemporaryDirectory() as folder:
        for case in ("lung1",) if args.quick else ("lung1", "brain1"):
            source = sitk.ReadImage(str(SHARED / f"{case}_image.nrrd"))
            files = [str(SHARED / f"{case}_image.nrrd")]
            for suffix, compress in ((".nii.gz", True), (".nii", False),
                                     (".mha", True), (".mha", False)):
                name = f"{case}{'_gz' if compress else ''}{suffix}"
                files.append(str(Path(folder) / name))
                sitk.WriteImage(source, files[-1], useCompression=compress)
            for path in files:
                image = sitk.ReadImage(path)
                reads = {"sitk": sitk.ReadImage, "ours": load_image,
                         "previous": previous,
                         "checks": lambda p, image=image: checks_only(p, image)}
                best = dict.fromkeys(reads, float("inf"))
                for _ in range(args.rounds):
                    for name, read in reads.items():
                        start = time.perf_counter()
                        read(path)
                        best[name] = min(best[name], time.perf_counter() - start)
                reference = sitk.ReadImage(path)
                identical = same(load_image(path), reference)
                print(f"  {Path(path).name:28s} {best['sitk']:8.4f}s "
                      f"{best['ours']:8.4f}s {best['previous']:8.4f}s  "
                      f"{best['ours'] / best['sitk']:14.2f}  "
                      f"{best['previous'] / best['sitk']:18.2f}  "
                      f"{best['checks'] / best['sitk']:16.3f}  {identical}")


if __name__ == "__main__":
    main()
