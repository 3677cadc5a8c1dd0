"""
From the scanner's DICOM files to a clean subject table
=======================================================

Every imaging project starts from a folder tree of DICOM files exported from
the hospital. This example takes a small synthetic export (written with
pydicom by :func:`~sklearn_medprep.datasets.make_dicom_cohort`: patient names,
ids, birth dates, institutions, private tags, in the files and in the folder
names) through the first steps:

1. :func:`~sklearn_medprep.dicom.scan_dicom`: one row per series, the
   acquisition tags as typed columns and a ``site`` built from the scanner;
2. :func:`~sklearn_medprep.dicom.deidentify_dicom`: DICOM PS3.15's Basic
   Profile (with dicognito), keyed pseudonyms, pixels unchanged;
3. :func:`~sklearn_medprep.dicom.convert_to_nifti`: lossless NIfTI with a
   SHA-256 manifest, re-checked by :func:`~sklearn_medprep.dicom.verify_manifest`.

It needs the ``dicom`` extra: ``pip install "sklearn-medprep[dicom]"``.
"""

# %%
# Settings shared by all examples: ``SKLEARN_MEDPREP_EXAMPLE_SMALL=1`` shrinks
# the data (the test suite sets it) and ``SKLEARN_MEDPREP_EXAMPLE_OUT`` names
# the output folder (a temporary one by default).
import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import SimpleITK as sitk

from sklearn_medprep.datasets import make_dicom_cohort
from sklearn_medprep.dicom import (
    convert_to_nifti,
    deidentify_dicom,
    scan_dicom,
    verify_manifest,
)

SMALL = os.environ.get("SKLEARN_MEDPREP_EXAMPLE_SMALL", "") not in ("", "0")
OUT = Path(
    os.environ.get("SKLEARN_MEDPREP_EXAMPLE_OUT")
    or tempfile.mkdtemp(prefix="medprep_example_")
)
OUT.mkdir(parents=True, exist_ok=True)
N_SUBJECTS = 3 if SMALL else 6

# %%
# The hospital's export
# ---------------------
# One MR and one CT series per patient, three scanners.
raw = OUT / "export"
make_dicom_cohort(raw, n_subjects=N_SUBJECTS, shape=(24, 20, 8))
print("a folder of the export:", next(raw.iterdir()).name)

# %%
# One row per series
# ------------------
# Headers only (pydicom, without the pixels). ``site_from=True`` joins
# manufacturer, model and field strength; the CT series have no field strength.
table = scan_dicom(raw, site_from=True)
print(f"series found: {len(table)}")
print(table[["PatientID", "Modality", "Manufacturer", "MagneticFieldStrength",
             "SliceThickness", "site", "problem"]].to_string())

# %%
# De-identification
# -----------------
# The key is a secret kept at the hospital: with it the same patient gets the
# same pseudonym in every export; without it the pseudonyms cannot be linked
# back. Output files are named from the new UIDs, not from the old folders.
anonymous = OUT / "anonymous"
written = deidentify_dicom(raw, anonymous, key="keep-this-secret",
                           keep=["PatientAge", "PatientSex"])
clean = scan_dicom(anonymous, site_from=True)
left = set(table["PatientID"]) & set(clean["PatientID"])
print(f"after de-identification: {len(clean)} series, "
      f"{clean['PatientID'].nunique()} pseudonyms, original ids left: {len(left)}")
print(clean[["PatientID", "PatientSex", "PatientAge", "StudyDate", "site"]]
      .to_string())

# %%
# Lossless NIfTI and a verifiable backup
# --------------------------------------
# Each file is read back and compared with the series (voxels, pixel type,
# geometry) before it is renamed into place; the manifest lists every file's
# SHA-256.
nifti = convert_to_nifti(clean, OUT / "nifti")
manifest = OUT / "nifti" / "manifest-sha256.csv"
print("manifest verified:", verify_manifest(OUT / "nifti", manifest).ok)
damaged = Path(nifti["image"].iloc[0])
damaged.write_bytes(damaged.read_bytes()[:-10])  # a bad copy
check = verify_manifest(OUT / "nifti", manifest)
print("after a change: changed", check.changed, "missing", check.missing)

# %%
# Looking at the converted images
# -------------------------------
# The middle slice of every series, titled with its pseudonym and site.
shown = nifti.drop(index=damaged.name.split(".")[0])
fig, axes = plt.subplots(1, len(shown), figsize=(2.2 * len(shown), 2.6))
for ax, (row, cell) in zip(axes, shown["image"].items()):
    array = sitk.GetArrayFromImage(sitk.ReadImage(cell))
    ax.imshow(array[array.shape[0] // 2], cmap="gray", origin="lower")
    ax.set_title(f"{shown.at[row, 'PatientID'][:6]} {shown.at[row, 'Modality']}\n"
                 f"{shown.at[row, 'ManufacturerModelName']}", fontsize=8)
    ax.axis("off")
fig.tight_layout()
fig.savefig(OUT / "dicom_to_table.png", dpi=80)
print("figure saved")
