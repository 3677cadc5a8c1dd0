"""The benchmark scripts keep working (quick sizes; no timing is asserted)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

EXPECTED = {
    "bench_combat.py": ["speedup", "max|diff|"],
    "bench_radiomics.py": [
        "extractions with memory: 20 (goal 20)",
        "identical scores: True",
    ],
    "bench_torchio.py": ["wall ratio", "TorchIOCollate"],
    "bench_patches.py": [
        "cohort x3 at queue 8: peak increase ratio",
        "overhead ratio ours / plain:",
    ],
}


def test_every_benchmark_is_listed():
    assert sorted(p.name for p in BENCHMARKS.glob("bench_*.py")) == sorted(EXPECTED)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_benchmark_quick_run(script):
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for line in EXPECTED[script]:
        assert line in result.stdout, (line, result.stdout[-3000:])
    # features or outputs compared against the reference in the same run agree
    diffs = re.findall(r"max rel diff (\S+)", result.stdout)
    assert all(float(d) <= 1e-12 for d in diffs), diffs
