"""What a newcomer sees from the command lines: plain help with defaults, no noise."""

import subprocess
import sys

from sklearn_medprep import write_manifest
from sklearn_medprep.datasets import make_multisite_cohort


def test_demo_help_is_plain_text_with_defaults():
    result = subprocess.run(
        [sys.executable, "-m", "sklearn_medprep.demo", "--help"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "``" not in text and ":func:" not in text and ":class:" not in text
    for default in ("(default: demo_output)", "(default: 120)", "(default: 12)",
                    "(default: 2)", "(default: 0)"):
        assert default in " ".join(text.split()), default


def test_extract_hides_third_party_deprecations(tmp_path):
    # PyRadiomics' schema validator (pykwalify) imports its extensions with the
    # deprecated load_module: with or without --quiet, the command must not print
    # that under its own name, while its own output is unchanged
    table = make_multisite_cohort(2, 1, shape=(12, 12, 10), path=tmp_path / "c",
                                  random_state=0)
    write_manifest(table, tmp_path / "t.csv", image="image", mask="mask")
    for quiet in ([], ["--quiet"]):
        out = tmp_path / f"features{len(quiet)}.csv"
        result = subprocess.run(
            [sys.executable, "-m", "sklearn_medprep._cli", "extract",
             str(tmp_path / "t.csv"), "-o", str(out), *quiet],
            capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, result.stderr
        assert "load_module" not in result.stderr, result.stderr
        assert "DeprecationWarning" not in result.stderr, result.stderr
        assert f"wrote 2 rows x 107 features to {out}" in result.stderr


def test_parquet_without_pyarrow_names_the_extra(monkeypatch):
    import importlib.util

    import pytest

    from sklearn_medprep._cli import output_format

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pyarrow" else real(name, *a))
    with pytest.raises(ValueError, match=r'pip install "sklearn-medprep\[parquet\]"'):
        output_format("features.parquet")
    assert output_format("features.csv") == "csv"
