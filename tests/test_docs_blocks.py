"""Every python code block of the user guide runs, page by page, as printed.

Each page's ``.. code-block:: python`` blocks run in order in one fresh
namespace (one subprocess per page, in an empty folder), after a short setup
this file defines for the names the prose introduces (``table``, ``pipe``,
...). A block that cannot run by nature (a cluster address, a user's own file)
carries an rst comment ``.. no-run: <reason>`` just before it; the reason is
required and the count is kept small. The README's python blocks other than
the quickstart (run by ``tests/test_readme.py``) run the same way, a block
that cannot run marked ``<!-- no-run: <reason> -->`` on the line before it.
Warnings of our own that a block raises fail the test unless
``EXPECTED_WARNINGS`` names them with the reason the page shows them.

Where a block prints a realistic size (a 160 mm crop, 50 epochs), ``SHRINK``
replaces it by a small one for the run; each replaced text must be in the block,
so the table cannot silently go stale.
"""

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

NO_RUN = re.compile(r"^\.\. no-run:(.*)$")
CODE_BLOCK = re.compile(r"^(\s*)\.\. code-block:: python\s*$")

# pages whose python blocks another test runs, and checks what they print
RUN_ELSEWHERE = {
    "getting_started.rst": "tests/test_docs.py::test_getting_started_runs_as_printed",
    "install.rst": "tests/test_docs.py::test_install_page_check_runs",
}

# modules a block may import that one of the two CI stacks lacks: the block
# (and its setup) is then left out on that stack, and the test says so
STACK_SPECIFIC = {
    "sksurv": "scikit-survival: numpy 2 stack only",
    "neuroHarmonize": "neuroHarmonize: numpy 1 stack only",
}

# a small cohort of images (paths, as a user's table holds) and of features
_COHORT = """
from sklearn_medprep.datasets import make_multisite_cohort
table = make_multisite_cohort(20, 2, shape=(24, 28, 20), path="cohort",
                              random_state=0)
"""
_FEATURES = """
from sklearn_medprep.datasets import make_multisite_features
table = make_multisite_features(60, 5, n_sites=2, random_state=0)
"""
# the user's PyRadiomics parameter file: first-order features, fast
_PARAMS_YAML = """
from pathlib import Path
Path("params.yaml").write_text(
    "setting:\\n  binCount: 16\\nimageType:\\n  Original: {}\\n"
    "featureClass:\\n  firstorder: []\\n"
)
"""
_FAST = {"setting": {"binCount": 16}, "featureClass": {"firstorder": []}}
_TINY_NET = """
import torch
class {name}(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv3d({channels}, 2, 3)
    def forward(self, x):
        return self.conv(x.float()).mean(dim=(2, 3, 4))
"""

# per page: {index of a block: setup run just before it}
SETUP = {
    "user_guide/splitters.rst": {
        0: _COHORT.replace("(20, 2,", "(30, 3,") + f"""
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_validate
from sklearn.pipeline import make_pipeline
from sklearn_medprep import ComBatHarmonizer, RadiomicsExtractor
pipe = make_pipeline(
    RadiomicsExtractor(settings={_FAST!r},
                       passthrough=["site", "age", "sex"], memory="cache"),
    ComBatHarmonizer(covariates=["age", "sex"]),
    LogisticRegression(),
)
grid = {{"logisticregression__C": [0.1, 1.0]}}
""",
    },
    "user_guide/torchio.rst": {
        0: _COHORT + """
train, test = table.iloc[::2], table.iloc[1::2]
""",
        1: "from sklearn.linear_model import LogisticRegression\n",
        2: "from sklearn_medprep import ComBatHarmonizer\n",
        3: "from sklearn_medprep import TorchIOAugmenter\n",
        4: _TINY_NET.format(name="Model", channels=1) + """
augmentation = tio.RandomFlip(axes=(0,))
model = Model()
loss_fn = torch.nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
""",
        5: _TINY_NET.format(name="CNN3D", channels=1),
    },
    "user_guide/radiomics.rst": {
        0: _COHORT + _PARAMS_YAML,
        3: """
from sklearn.model_selection import GridSearchCV
from sklearn_medprep.model_selection import SiteStratifiedKFold
y = table["y"]
search = GridSearchCV(pipe, {"logisticregression__C": [0.01, 0.1, 1.0, 10.0]},
                      cv=SiteStratifiedKFold(5))
""",
    },
    "user_guide/subject_table.rst": {
        0: """
import torchio as tio
from sklearn_medprep import TorchIOAugmenter
from sklearn_medprep.datasets import make_multisite_cohort
table = make_multisite_cohort(4, 2, shape=(16, 18, 14), random_state=0)
augment = TorchIOAugmenter(tio.RandomFlip(axes=(0,)), random_state=0)
augmented = augment.fit_transform(table)
""",
    },
    "user_guide/scaling.rst": {
        2: _COHORT + _PARAMS_YAML + """
from sklearn_medprep._cli import main
table.to_csv("manifest.csv")
assert main(["extract", "manifest.csv", "-p", "params.yaml", "-o", "features.csv",
             "--index-col", "subject"]) == 0
""",
    },
    # the preset's "no discretisation" needs integer intensities >= 1
    "user_guide/ibsi.rst": {0: _COHORT + """
import SimpleITK as sitk
for path in table["image"]:
    sitk.WriteImage(sitk.Cast(sitk.Round(sitk.ReadImage(path)), sitk.sitkInt16),
                    path)
"""},
    # self-contained: the page builds its own array
    "user_guide/filters.rst": {},
    "user_guide/filters_extractor.rst": {},
    "user_guide/patches.rst": {
        0: _COHORT + _TINY_NET.format(name="MyCNN", channels=1) + """
table["diagnosis"] = table["y"]
""",
    },
    "user_guide/persistence.rst": {
        0: _FEATURES + """
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn_medprep import ComBatHarmonizer
table, new_table = table.iloc[:50], table.iloc[50:].drop(columns="y")
y = table.pop("y")
pipe = make_pipeline(ComBatHarmonizer(covariates=["age", "sex"]),
                     LogisticRegression())
grid = {"logisticregression__C": [0.1, 1.0]}
""",
    },
    "user_guide/robust_features.rst": {0: _COHORT + _PARAMS_YAML},
    "user_guide/harmonization.rst": {
        2: """
import numpy as np
from sklearn_medprep.datasets import make_multisite_features
X = make_multisite_features(60, 5, n_sites=2, random_state=0).drop(columns=["y", "sex"])
rng = np.random.default_rng(0)
from sksurv.util import Surv
y = Surv.from_arrays(rng.random(len(X)) < 0.7, rng.exponential(10, len(X)) + 1)
""",
        3: """
from sklearn.model_selection import cross_validate
table = make_multisite_features(60, 5, n_sites=2, random_state=0)
sites = table["site"].to_numpy()
covs = table[["age"]]
y = table["y"]
features = table.filter(like="f0")
""",
        4: """
import sklearn
sklearn.set_config(enable_metadata_routing=False)
model = LogisticRegression()
""",
        6: """
# visits of 30 subjects (3 each) at 3 sites, 4 features
import numpy as np
import pandas as pd
rng = np.random.default_rng(0)
subject = np.repeat(np.arange(30), 3)
site = (np.arange(30) % 3)[subject]
time = np.tile(np.arange(3.0), 30)
age = rng.uniform(40, 80, 30)[subject] + time
feature_columns = [f"f{j}" for j in range(4)]
values = (rng.normal(0, 1, (30, 4))[subject] + 0.1 * time[:, None]
          + np.array([0.0, 0.5, -0.5])[site][:, None]
          + rng.normal(0, 0.5, (90, 4)))
visits = pd.DataFrame(values, columns=feature_columns)
visits["subject"] = [f"s{i:02d}" for i in subject]
visits["site"] = np.array(["A", "B", "C"])[site]
visits["time"], visits["age"] = time, age
y = values[:, 0] + rng.normal(0, 0.1, 90)
""",
        7: """
import neuroHarmonize
table = make_multisite_features(60, 5, n_sites=2, random_state=0)
feature_names = [c for c in table if c.startswith("f0")]
lab_model, _ = neuroHarmonize.harmonizationLearn(
    table[feature_names].to_numpy(), table[["site"]].rename(columns={"site": "SITE"}))
neuroHarmonize.saveHarmonizationModel(lab_model, "lab_model.pkl")
classifier = LogisticRegression()
""",
        8: """
# features, site, age and sex of every subject (no target: not harmonized)
cohort = make_multisite_features(60, 5, n_sites=2, random_state=0).drop(columns="y")
train, test = cohort.iloc[::2], cohort.iloc[1::2]
""",
        10: """
from sklearn_medprep.datasets import make_voxel_cohort
train, _ = make_voxel_cohort(24, 2, random_state=0)
test, _ = make_voxel_cohort(12, 2, random_state=1)
""",
    },
}

# per page: {index of a block: a check run just after it}, for what a
# block's comment states
CHECK = {
    "user_guide/radiomics.rst": {
        1: """
import re
assert features.index[0] == "sub-000|1|1", list(features.index[:3])
assert all(re.fullmatch(r"sub-\\d{3}\\|1\\|\\d+", i) for i in features.index)
assert {"subject", "label", "lesion", "voxels"} <= set(lesions.columns)
""",
        3: 'assert count_extractions("cache/") == len(table)\n',
    },
    "user_guide/splitters.rst": {
        2: 'assert (subject_overlap(cv, X_rows, y_rows)["n_overlap"] == 0).all()\n',
    },
    "user_guide/subject_table.rst": {
        0: """
from pathlib import Path
import pandas as pd
from sklearn_medprep import read_manifest
back = read_manifest("out/augmented/manifest.csv", mask="mask", index_col="subject")
assert list(back.index) == list(augmented.index)
assert back["image"].map(lambda f: Path(f).is_file()).all()
assert len(pd.read_csv("out/augmented/checksums.csv")) == 2 * len(augmented)
""",
    },
    "user_guide/torchio.rst": {
        3: "assert len(augmenter.fit_transform(train)) == len(train)\n",
    },
    "user_guide/robust_features.rst": {
        1: """
kept = selector.get_feature_names_out()
assert 0 < len(kept) < selector.n_features_in_, (len(kept), selector.n_features_in_)
assert set(selector.redundant_with_.values()) <= set(kept)
""",
    },
    "user_guide/ibsi.rst": {
        0: """
assert "original_firstorder_ExcessKurtosis" in features
assert "original_firstorder_Kurtosis" not in features
""",
    },
}

# per page: (text in the page's blocks, what the run uses instead)
SHRINK = {
    "user_guide/splitters.rst": [
        ('RadiomicsExtractor(label="label",',
         f'RadiomicsExtractor(settings={_FAST!r}, label="label",'),
    ],
    "user_guide/torchio.rst": [
        ("tio.CropOrPad((160, 192, 160))", "tio.CropOrPad((24, 28, 20))"),
        ("range(10)", "range(1)"),
        ("tio.CropOrPad((64, 64, 64))", "tio.CropOrPad((16, 16, 16))"),
        ("max_epochs=20", "max_epochs=2"),
    ],
    "user_guide/patches.rst": [
        ("patch_size=64", "patch_size=8"),
        ("samples_per_volume=16", "samples_per_volume=2"),
        ("queue_length=256", "queue_length=8"),
        ("max_epochs=50", "max_epochs=1"),
    ],
}

# per page: {(index of a block, warning class of ours): why the block shows it}
_NEW_SITE = ('unseen_site="estimate" under LeaveOneSiteOut: the warning that a new '
             "site is estimated with the target at its training centre "
             "(harmonization.rst, New sites)")
EXPECTED_WARNINGS = {
    "user_guide/splitters.rst": {(0, "MedprepWarning"): _NEW_SITE,
                                 (5, "MedprepWarning"): _NEW_SITE},
}

# the most blocks that may be marked no-run, over all pages
MAX_NO_RUN = 4


def _python_blocks(text):
    """(line, code, no-run reason or None) of each python code block."""
    lines = text.splitlines()
    blocks = []
    for i, line in enumerate(lines):
        match = CODE_BLOCK.match(line)
        if not match:
            continue
        indent = match.group(1)
        body = []
        j = i + 1
        # directive options (":class: ...") come first
        while j < len(lines) and lines[j].strip().startswith(":"):
            j += 1
        while j < len(lines) and (not lines[j].strip()
                                  or lines[j].startswith(indent + " ")):
            body.append(lines[j])
            j += 1
        code = "\n".join(body).strip("\n")
        width = min(len(b) - len(b.lstrip()) for b in body if b.strip())
        code = "\n".join(b[width:] for b in code.splitlines())
        reason = None
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        no_run = NO_RUN.match(lines[k].strip()) if k >= 0 else None
        if no_run:
            reason = no_run.group(1).strip()
            assert reason, f"line {k + 1}: '.. no-run:' needs a reason"
        blocks.append((i + 1, code, reason))
    return blocks


def _readme_blocks():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    quickstart = text.split("## Quickstart", 1)[1]
    first = re.search(r"```python\n(.*?)```", quickstart, re.S).group(1)
    blocks = []
    for match in re.finditer(r"```python\n(.*?)```", text, re.S):
        if match.group(1) == first:
            continue  # tests/test_readme.py runs it
        line = text[: match.start()].count("\n") + 1
        before = text[: match.start()].rstrip().splitlines()
        reason = None
        if before and before[-1].startswith("<!-- no-run:"):
            reason = before[-1][len("<!-- no-run:"):].removesuffix("-->").strip()
            assert reason, f"README.md:{line}: 'no-run' needs a reason"
        blocks.append((line, match.group(1), reason))
    return blocks


def _blocks(page):
    if page == "README.md":
        return _readme_blocks()
    return _python_blocks((DOCS / page).read_text(encoding="utf-8"))


def _pages_with_blocks():
    pages = [str(p.relative_to(DOCS)) for p in sorted(DOCS.rglob("*.rst"))
             if "_build" not in p.parts and "generated" not in p.parts
             and _blocks(str(p.relative_to(DOCS)))]
    if _readme_blocks():
        pages.append("README.md")
    return pages


def _imports(code):
    names = re.findall(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", code, re.M)
    return set(names)


_RUNNER = """
import json, sys, warnings
chunks = json.load(open(sys.argv[1]))
namespace = {"__name__": "__main__"}
for name, code in chunks:
    print(f"@@@ {name}", flush=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile(code, name, "exec"), namespace)
    for w in caught:
        category = w.category
        ours = category.__module__.startswith("sklearn_medprep")
        print(f"@@@W {ours} {name} {category.__name__}: {w.message}", flush=True)
"""


def test_every_page_with_python_blocks_is_run_here_or_elsewhere():
    pages = set(_pages_with_blocks())
    here = set(SETUP) | ({"README.md"} if _readme_blocks() else set())
    assert pages - set(RUN_ELSEWHERE) == here, (
        "a page with python blocks needs an entry in SETUP (maybe empty)")
    no_run = [(page, line, reason) for page in here
              for line, _, reason in _blocks(page) if reason is not None]
    print(f"{len(no_run)} blocks marked no-run:")
    for page, line, reason in sorted(no_run):
        print(f"  {page}:{line}: {reason}")
    assert len(no_run) <= MAX_NO_RUN, "keep the blocks that do not run few"


def test_python_is_in_code_blocks_not_literal_blocks():
    # a "::" literal block is never run: python goes in ".. code-block:: python"
    looks_like_python = re.compile(
        r"^(import \w|from \w+ import |\w[\w, ]* = \w[\w.]*\()")
    found = []
    for path in sorted(DOCS.rglob("*.rst")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines[:-2]):
            if line.rstrip().endswith("::") and not line.lstrip().startswith(".. "):
                first = next((n.strip() for n in lines[i + 1:] if n.strip()), "")
                if looks_like_python.match(first):
                    found.append(f"{path.relative_to(DOCS)}:{i + 1}: {first}")
    assert not found, found


def test_shrink_table_matches_the_blocks():
    for page, pairs in SHRINK.items():
        code = "\n".join(c for _, c, _ in _blocks(page))
        for old, _ in pairs:
            assert old in code, f"{page}: {old!r} no longer in its blocks"


@pytest.mark.slow
@pytest.mark.parametrize("page", sorted(set(SETUP)) + (
    ["README.md"] if _readme_blocks() else []))
def test_page_blocks_run(page, tmp_path):
    blocks = _blocks(page)
    setup = SETUP.get(page, {})
    for table in (setup, CHECK.get(page, {})):
        assert set(table) <= set(range(len(blocks))), "a setup for a block not there"
    chunks, left_out = [], []
    for index, (line, code, reason) in enumerate(blocks):
        if reason is not None:
            continue
        missing = [m for m in _imports(code) if importlib.util.find_spec(m) is None]
        if missing:
            assert set(missing) <= set(STACK_SPECIFIC), (
                f"{page}:{line} imports {missing}, not installed")
            left_out.append(f"{page}:{line} ({STACK_SPECIFIC[missing[0]]})")
            continue
        for old, new in SHRINK.get(page, []):
            code = code.replace(old, new)
        if index in setup:
            chunks.append((f"<setup before {page}:{line}>", setup[index]))
        chunks.append((f"{page}:{line}", code))
        if index in CHECK.get(page, {}):
            chunks.append((f"<check after {page}:{line}>", CHECK[page][index]))
    (tmp_path / "_chunks.json").write_text(json.dumps(chunks))
    (tmp_path / "_runner.py").write_text(_RUNNER)
    work = tmp_path / "work"
    work.mkdir()
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(tmp_path / "_runner.py"), str(tmp_path / "_chunks.json")],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg",
             "OMP_NUM_THREADS": "1"},
    )
    seconds = time.perf_counter() - start
    ran = result.stdout.count("@@@ ")
    assert result.returncode == 0, (
        f"{page}: block failed (last started: "
        f"{re.findall(r'@@@ (.*)', result.stdout)[-1:]})\n{result.stderr[-4000:]}")
    # warnings of our own are findings: a block that triggers one shows a
    # misuse, unless the page documents that warning there
    ours = re.findall(r"^@@@W True (\S+) (\w+): (.*)$", result.stdout, re.M)
    index_of = {f"{page}:{line}": index for index, (line, _, _) in enumerate(blocks)}
    expected = EXPECTED_WARNINGS.get(page, {})
    unexpected = [w for w in ours if (index_of.get(w[0]), w[1]) not in expected]
    assert not unexpected, f"{page}: our warnings: {unexpected[:3]}"
    seen = {(index_of.get(w[0]), w[1]) for w in ours}
    assert set(expected) <= seen, f"{page}: expected warnings not seen: {expected}"
    print(f"{page}: {len(chunks)} chunks ({ran} started) in {seconds:.0f} s;"
          f" left out on this stack: {left_out or 'none'}")
