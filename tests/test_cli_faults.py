"""The command line's output under faults (issue 21): one table of cases.

Each case asserts the exact behaviour: exit status, the file named in the
message, what is left under the output's name (the complete correct output, or
nothing / the old file untouched), and the values kept.
"""

import io
import json
import math
import os
import stat
import subprocess

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from sklearn_medprep._cli import main, to_json_text
from sklearn_medprep.exceptions import SubjectTableError
from sklearn_medprep.table._manifest import write_manifest

PARAMS = {"featureClass": {"firstorder": [], "glcm": []},
          "setting": {"binWidth": 7}}


@pytest.fixture
def manifest(tmp_path):
    """Three subjects, relative paths, features with full float64 digits."""
    rows = []
    for i in range(3):
        rng = np.random.default_rng(10 + i)
        image = sitk.GetImageFromArray(rng.normal(100, 30, (8, 9, 7)))
        image.SetSpacing((0.7, 1.1, 1.3))
        mask_array = np.zeros((8, 9, 7), np.uint8)
        mask_array[1:7, 2:8, 1 : 5 + i % 2] = 1
        mask = sitk.GetImageFromArray(mask_array)
        mask.CopyInformation(image)
        sitk.WriteImage(image, str(tmp_path / f"s{i}_image.nrrd"))
        sitk.WriteImage(mask, str(tmp_path / f"s{i}_mask.nrrd"))
        rows.append({"subject": f"s{i}", "image": f"s{i}_image.nrrd",
                     "mask": f"s{i}_mask.nrrd"})
    pd.DataFrame(rows).to_csv(tmp_path / "table.csv", index=False)
    (tmp_path / "params.json").write_text(json.dumps(PARAMS))
    return tmp_path


def _extract(manifest, out, *args):
    return main(["extract", str(manifest / "table.csv"), "--quiet", "-p",
                 str(manifest / "params.json"), "--index-col", "subject",
                 "-o", str(out), *map(str, args)])


@pytest.fixture
def umask():
    """Set the process umask for one test, restored afterwards."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_mask(mask):
        os.umask(mask)

    yield set_mask
    os.umask(saved)


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs, filled up: a real full disk (needs mount rights)."""
    folder = tmp_path / "full"
    folder.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs",
                        str(folder)], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here (not root?): {exc}")
    try:
        with open(folder / "filler", "wb") as filler:
            while True:
                filler.write(b"\0" * 4096)
                filler.flush()
    except OSError:
        pass
    yield folder
    subprocess.run(["umount", str(folder)], check=False, timeout=30)


def _csv_and_json(manifest):
    """The CSV and the JSON output of the same extraction (cached second run)."""
    cache = manifest / "cache"
    assert _extract(manifest, manifest / "f.csv", "--memory", cache) == 0
    assert _extract(manifest, manifest / "f.json", "--memory", cache) == 0
    # pandas 2's default C parser may be 1 ulp off; round_trip reads exactly
    csv = pd.read_csv(manifest / "f.csv", index_col=0, float_precision="round_trip")
    records = json.loads((manifest / "f.json").read_text())
    return csv, records


def case_json_exact(manifest, capsys, umask, request):
    csv, records = _csv_and_json(manifest)
    assert [r["subject"] for r in records] == list(csv.index)
    values = [(r[c], csv.loc[r["subject"], c]) for r in records
              for c in csv.columns]
    assert len(values) == 3 * 42  # firstorder + glcm, every row
    differ = [(a, b) for a, b in values if a != b]
    assert not differ, f"{len(differ)} of {len(values)} values differ"
    # pandas' own JSON (15 digits) would lose some of these very values
    floats = np.array([b for _, b in values], dtype=float)
    lossy = json.loads(pd.Series(floats).to_json(double_precision=15))
    assert any(float(v) != f for v, f in zip(lossy.values(), floats))


def case_json_1000_random_floats(manifest, capsys, umask, request):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(100, 10)) * 10.0 ** rng.integers(
        -8, 8, size=(100, 10)), columns=[f"f{j}" for j in range(10)])
    frame.index.name = "row"
    back = pd.DataFrame(json.loads(to_json_text(frame))).set_index("row")
    assert (back.to_numpy() == frame.to_numpy()).all()  # 0 of 1000 differ
    pandas_back = pd.read_json(
        io.StringIO(frame.to_json(orient="records",
                                                double_precision=15)))
    assert (pandas_back.to_numpy() != frame.to_numpy()).sum() > 100


def case_json_nan_inf(manifest, capsys, umask, request):
    frame = pd.DataFrame({"x": [np.nan, np.inf, -np.inf, 1e-310],
                          "label": ["a", None, "c\"q", "d"],
                          "n": np.array([1, 2, 3, 4], dtype=np.int64),
                          "b": [True, False, True, False]})
    frame.index.name = "row"
    text = to_json_text(frame)
    assert '"x": null' in text and '"x": 1e999' in text and '"x": -1e999' in text
    back = json.loads(text)  # standard JSON (no NaN/Infinity literals)
    assert back[0]["x"] is None
    assert back[1]["x"] == math.inf and back[2]["x"] == -math.inf
    assert back[3]["x"] == 1e-310  # subnormal exact
    assert [r["label"] for r in back] == ["a", None, "c\"q", "d"]
    assert [r["n"] for r in back] == [1, 2, 3, 4]
    assert [r["b"] for r in back] == [True, False, True, False]
    read = pd.read_json(io.StringIO(text))
    assert read["x"].isna()[0] and np.isinf(read["x"][1])


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640),
                                        (0o002, 0o664)])
def test_output_created_with_the_users_umask(manifest, umask, mask, mode):
    umask(mask)
    for name in ("f.csv", "f.json"):
        assert _extract(manifest, manifest / name) == 0
        assert stat.S_IMODE((manifest / name).stat().st_mode) == mode


def case_existing_out_refused(manifest, capsys, umask, request):
    out = manifest / "f.csv"
    out.write_text("old results\n")
    with pytest.raises(SystemExit) as info:
        _extract(manifest, out)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"--out {str(out)!r} exists; pass --force" in err
    assert out.read_text() == "old results\n"
    assert _extract(manifest, out, "--force") == 0
    assert pd.read_csv(out, index_col=0).shape[0] == 3
    assert not list(manifest.glob(".*.part"))


def case_full_disk_named(manifest, capsys, umask, request):
    folder = request.getfixturevalue("full_disk")
    out = folder / "features.csv"
    assert _extract(manifest, out) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"sklearn-medprep extract: error: [file {str(out)!r}]")
    assert "the disk is full" in err and "nothing was left under this name" in err
    assert "no output written" in err and "Traceback" not in err
    assert sorted(p.name for p in folder.iterdir()) == ["filler"]  # no .part


def case_full_disk_keeps_old_file(manifest, capsys, umask, request):
    folder = request.getfixturevalue("full_disk")
    out = folder / "features.json"
    (folder / "filler").unlink()
    out.write_text("old results\n")
    with open(folder / "filler", "wb", buffering=0) as filler:  # full again
        try:
            while True:
                filler.write(b"\0" * 1024)
        except OSError:
            pass
    assert _extract(manifest, out, "--force") == 1
    err = capsys.readouterr().err
    assert f"error: [file {str(out)!r}]" in err and "the disk is full" in err
    assert out.read_text() == "old results\n"
    assert sorted(p.name for p in folder.iterdir()) == ["features.json", "filler"]


def case_manifest_refuses_in_memory_image(manifest, capsys, umask, request):
    table = pd.read_csv(manifest / "table.csv", index_col="subject")
    table["image"] = table["image"].map(lambda p: str(manifest / p))
    table = table.astype({"image": object})
    cells = table["image"].tolist()  # pandas 2 would unpack an image set by .loc
    cells[table.index.get_loc("s1")] = sitk.ReadImage(str(manifest / "s1_image.nrrd"))
    table["image"] = pd.Series(cells, index=table.index, dtype=object)
    out = manifest / "copy.csv"
    with pytest.raises(SubjectTableError) as info:
        write_manifest(table, out, mask="mask")
    assert info.value.row == "s1" and info.value.column == "image"
    assert "[row 's1', column 'image'] a manifest holds paths" in str(info.value)
    assert "Image" in str(info.value)
    assert not out.exists()
    # path cells are written (relative to the manifest's folder)
    table.loc["s1", "image"] = str(manifest / "s1_image.nrrd")
    written = pd.read_csv(write_manifest(table, out, mask="mask"), index_col=0)
    assert written.loc["s1", "image"] == "s1_image.nrrd"


CASES = {name[len("case_"):]: func for name, func in dict(globals()).items()
         if name.startswith("case_")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cli_fault(case, manifest, capsys, umask, request):
    CASES[case](manifest, capsys, umask, request)
