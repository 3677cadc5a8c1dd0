"""The README's quickstart runs as printed and prints what the README quotes."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _quickstart():
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quickstart", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    return section, code


@pytest.mark.slow
def test_quickstart_runs_and_prints_the_quoted_scores(tmp_path):
    section, code = _quickstart()
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "PYTHONPATH": str(README.parent), "MPLBACKEND": "Agg"},
    )
    seconds = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-3000:]
    print(f"README quickstart ran in {seconds:.0f} s")
    printed = re.search(r"ROC AUC per outer fold: \[([^\]]*)\] mean ([\d.]+)",
                        result.stdout)
    assert printed, result.stdout[-2000:]
    print(printed.group(0))
    folds = [float(v) for v in printed.group(1).split()]
    mean = float(printed.group(2))
    # the README quotes the line it prints (to 0.02: BLAS builds differ a little)
    quoted = re.search(r"`ROC AUC per outer fold: \[([^\]]*)\]\s+mean ([\d.]+)`",
                       section.replace("\n", " "))
    assert quoted, "the README no longer quotes the quickstart's score line"
    assert [float(v) for v in quoted.group(1).split()] == pytest.approx(folds, abs=0.02)
    assert float(quoted.group(2)) == pytest.approx(mean, abs=0.02)
    # a leak-free score on a weak effect: not a perfect score
    assert mean < 0.95
    # it writes into its one output folder only
    assert sorted(p.name for p in tmp_path.iterdir()) == ["medprep_quickstart"]
