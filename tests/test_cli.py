"""The sklearn-medprep command line: extract."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from radiomics.featureextractor import RadiomicsFeatureExtractor

from sklearn_medprep._cli import main

PARAMS = {"featureClass": {"firstorder": [], "shape": ["VoxelVolume"]},
          "setting": {"binWidth": 20}}


@pytest.fixture
def manifest(tmp_path):
    """A CSV with relative paths, three subjects, asymmetric images."""
    rows = []
    for i in range(3):
        rng = np.random.default_rng(i)
        image = sitk.GetImageFromArray(rng.normal(200, 40, (9, 8, 7)))
        image.SetSpacing((1.0, 0.9, 1.4))
        mask_array = np.zeros((9, 8, 7), np.uint8)
        mask_array[2:7, 1:6, 2 : 5 + i % 2] = 1
        mask = sitk.GetImageFromArray(mask_array)
        mask.CopyInformation(image)
        sitk.WriteImage(image, str(tmp_path / f"s{i}_image.nrrd"))
        sitk.WriteImage(mask, str(tmp_path / f"s{i}_mask.nrrd"))
        rows.append({"subject": f"s{i}", "image": f"s{i}_image.nrrd",
                     "mask": f"s{i}_mask.nrrd", "site": "AB"[i % 2]})
    pd.DataFrame(rows).to_csv(tmp_path / "table.csv", index=False)
    (tmp_path / "params.json").write_text(json.dumps(PARAMS))
    return tmp_path


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "sklearn_medprep._cli", *map(str, args)],
        capture_output=True, text=True, timeout=300,
    )


def test_extract_writes_pyradiomics_features(manifest):
    out = manifest / "features.csv"
    result = _run("extract", manifest / "table.csv", "--params",
                  manifest / "params.json", "--out", out, "--n-jobs", 2,
                  "--index-col", "subject")
    assert result.returncode == 0, result.stderr
    assert "3/3" in result.stderr  # progress bar
    features = pd.read_csv(out, index_col=0)
    assert list(features.index) == ["s0", "s1", "s2"]
    assert list(features.columns[-1:]) == ["site"]
    ref = RadiomicsFeatureExtractor({**PARAMS, "setting": {
        "binWidth": 20, "additionalInfo": False}}).execute(
        str(manifest / "s1_image.nrrd"), str(manifest / "s1_mask.nrrd"))
    ref = pd.Series({k: float(v) for k, v in ref.items()})
    np.testing.assert_allclose(features.loc["s1", ref.index].to_numpy(float), ref,
                               rtol=1e-12)
    assert not (manifest / "features.csv.errors.csv").exists()


def test_extract_error_exits_nonzero_and_writes_nothing(manifest):
    table = pd.read_csv(manifest / "table.csv")
    table.loc[1, "mask"] = "missing_mask.nrrd"
    table.to_csv(manifest / "bad.csv", index=False)
    out = manifest / "features.csv"
    out.write_text("old results\n")
    result = _run("extract", manifest / "bad.csv", "--out", out, "--quiet",
                  "--index-col", "subject", "--params", manifest / "params.json")
    assert result.returncode == 1
    assert "row 's1'" in result.stderr and "column 'mask'" in result.stderr
    assert "missing_mask.nrrd" in result.stderr
    assert "Traceback" not in result.stderr
    assert out.read_text() == "old results\n"  # untouched
    assert not list(manifest.glob("*.part"))
    # on-error nan: all rows written, the bad one NaN and listed
    assert main(["extract", str(manifest / "bad.csv"), "--out", str(out),
                 "--quiet", "--on-error", "nan", "--index-col", "subject",
                 "--params", str(manifest / "params.json")]) == 0
    features = pd.read_csv(out, index_col=0)
    assert list(features.index) == ["s0", "s1", "s2"]
    assert features.loc["s1"].drop("site").isna().all()
    assert features.loc["s0"].drop("site").notna().all()
    errors = pd.read_csv(f"{out}.errors.csv")
    assert list(errors["row"]) == ["s1"] and errors["column"][0] == "mask"


@pytest.mark.parametrize(
    "args, message",
    [
        (["nope.csv"], "manifest not found"),
        (["table.csv", "--mask", "seg"], "seg"),
        (["table.csv", "--params", "bad.yaml"], "invalid PyRadiomics settings"),
        (["table.csv", "--params", "none.yaml"], "none.yaml"),
    ],
)
def test_bad_input_exits_2_with_message(manifest, args, message, capsys):
    (manifest / "bad.yaml").write_text("setting:\n  binWidht: 3\n")
    args = [str(manifest / a) if a.endswith((".csv", ".yaml")) else a for a in args]
    out = manifest / "features.csv"
    with pytest.raises(SystemExit) as info:
        main(["extract", *args, "--out", str(out), "--quiet"])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_no_subcommand_is_an_error(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def test_unusable_cache_folder_exits_1_without_traceback(manifest):
    blocker = manifest / "blocker"
    blocker.write_text("a file, not a folder")
    out = manifest / "features.csv"
    result = _run("extract", manifest / "table.csv", "--params",
                  manifest / "params.json", "--out", out,
                  "--memory", blocker / "cache", "--quiet")
    assert result.returncode == 1
    assert "cannot use the radiomics cache folder" in result.stderr
    assert "Traceback" not in result.stderr
    assert "no output written" in result.stderr and not out.exists()
