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
from sklearn_medprep.utils import count_extractions

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
                  "--force", "--index-col", "subject", "--params",
                  manifest / "params.json")
    assert result.returncode == 1
    assert "row 's1'" in result.stderr and "column 'mask'" in result.stderr
    assert "missing_mask.nrrd" in result.stderr
    assert "Traceback" not in result.stderr
    assert out.read_text() == "old results\n"  # untouched
    assert not list(manifest.glob("*.part"))
    # on-error nan: all rows written, the bad one NaN and listed
    assert main(["extract", str(manifest / "bad.csv"), "--out", str(out),
                 "--quiet", "--force", "--on-error", "nan", "--index-col", "subject",
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


def _extract(manifest, *args):
    return main(["extract", str(manifest / "table.csv"), "--quiet", *map(str, args)])


def test_output_format_from_extension_or_flag(manifest, capsys):
    params = manifest / "params.json"
    csv = pd.read_csv(manifest / "table.csv")
    assert _extract(manifest, "-p", params, "-o", manifest / "f.json",
                    "--index-col", "subject") == 0
    records = json.loads((manifest / "f.json").read_text())
    assert [r["subject"] for r in records] == list(csv["subject"])
    # an extension that tells nothing, with --format: allowed
    assert _extract(manifest, "-p", params, "-o", manifest / "g.out", "-f",
                    "csv") == 0
    assert len(pd.read_csv(manifest / "g.out", index_col=0)) == 3
    for out, message in (
        ("f.txt", "cannot tell the output format"),
        ("f.xlsx", "use .csv, .parquet or .json"),
    ):
        with pytest.raises(SystemExit) as info:
            _extract(manifest, "-p", params, "-o", manifest / out)
        assert info.value.code == 2
        assert message in capsys.readouterr().err
        assert not (manifest / out).exists()
    with pytest.raises(SystemExit):
        _extract(manifest, "-p", params, "-o", manifest / "f.csv", "-f", "json")
    assert "contradicts the extension" in capsys.readouterr().err


def test_parquet_needs_pyarrow(manifest, capsys):
    out = manifest / "f.parquet"
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(SystemExit) as info:
            _extract(manifest, "-o", out, "-p", manifest / "params.json")
        assert info.value.code == 2
        assert "needs the pyarrow package" in capsys.readouterr().err
        assert not out.exists()
    else:
        assert _extract(manifest, "-o", out, "-p", manifest / "params.json") == 0
        assert len(pd.read_parquet(out)) == 3


@pytest.mark.parametrize("where", ["folder", "under a file"])
def test_output_path_checked_before_extraction(manifest, capsys, where):
    blocker = manifest / "blocker"
    if where == "folder":
        blocker.mkdir()
        out = blocker
    else:
        blocker.write_text("a file")
        out = blocker / "features.csv"
    memory = manifest / "cache"
    with pytest.raises(SystemExit) as info:
        _extract(manifest, "-o", out, "-p", manifest / "params.json",
                 "--memory", memory)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "is a folder" in err if where == "folder" else "is a file" in err
    assert "Traceback" not in err
    assert count_extractions(memory) == 0  # nothing was extracted


def test_param_file_conflicts_are_reported(manifest, capsys):
    (manifest / "p.yaml").write_text(
        "featureClass:\n  firstorder: [Mean]\nsetting:\n  binWidth: 20\n  label: 2\n")
    out = manifest / "f.csv"
    assert _extract(manifest, "-p", manifest / "p.yaml", "-o", out, "--label", "1",
                    "-s", "binWidth:10", "--setting", "force2D:false") == 0
    err = capsys.readouterr().err
    assert "the parameter file sets label=2; --label 1 overrides it" in err
    assert "sets binWidth=20; --setting 'binWidth:10' overrides it with 10" in err
    assert "MedprepWarning" in err  # the extractor's own warning is shown too
    features = pd.read_csv(out, index_col=0)
    assert features.index.name == "row"
    ref = RadiomicsFeatureExtractor(
        {"featureClass": {"firstorder": ["Mean"]},
         "setting": {"binWidth": 10, "force2D": False}}
    ).execute(str(manifest / "s0_image.nrrd"), str(manifest / "s0_mask.nrrd"))
    assert features["original_firstorder_Mean"].iloc[0] == pytest.approx(
        float(ref["original_firstorder_Mean"]), rel=1e-12)
    with pytest.raises(SystemExit):
        _extract(manifest, "-o", out, "--force", "-s", "binWidth")
    assert "expected KEY:VALUE" in capsys.readouterr().err


def test_pyradiomics_batch_csv_and_options(manifest, capsys):
    table = pd.read_csv(manifest / "table.csv")
    batch = table.rename(columns={"image": "Image", "mask": "Mask"})
    batch["Label"] = 1
    batch.to_csv(manifest / "batch.csv", index=False)
    out = manifest / "batch_features.csv"
    assert main(["extract", str(manifest / "batch.csv"), "-p",
                 str(manifest / "params.json"), "-o", str(out), "-j", "1",
                 "--quiet"]) == 0
    features = pd.read_csv(out, index_col="row")  # a named index column
    assert list(features.index) == [0, 1, 2]
    assert {"subject", "site", "Label"} <= set(features.columns)
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert "sklearn-medprep 0.1.0" in capsys.readouterr().out


def test_demo_style_manifest_from_another_working_directory(manifest, tmp_path,
                                                            monkeypatch):
    from sklearn_medprep import read_manifest
    from sklearn_medprep.table._manifest import write_manifest

    table = read_manifest(manifest / "table.csv", mask="mask", index_col="subject")
    written = write_manifest(table, manifest / "copy.csv", mask="mask")
    assert pd.read_csv(written)["image"].tolist() == [
        f"s{i}_image.nrrd" for i in range(3)]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["extract", str(written), "-o", "out.csv", "--index-col",
                 "subject", "-p", str(manifest / "params.json"), "--quiet"]) == 0
    assert list(pd.read_csv("out.csv", index_col=0).index) == ["s0", "s1", "s2"]
