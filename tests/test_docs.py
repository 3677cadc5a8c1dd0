"""The documentation builds with zero warnings: API pages, gallery, offline math."""

import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
EXAMPLES = DOCS.parent / "examples"

MAIN_API_PAGES = [
    "sklearn_medprep.RadiomicsExtractor",
    "sklearn_medprep.ComBatHarmonizer",
    "sklearn_medprep.VoxelComBatHarmonizer",
    "sklearn_medprep.TorchIOPreprocessor",
    "sklearn_medprep.TorchIOAugmenter",
    "sklearn_medprep.ImageTensorizer",
    "sklearn_medprep.TorchIOCollate",
    "sklearn_medprep.expand_labels",
    "sklearn_medprep.expand_lesions",
    "sklearn_medprep.model_selection.SiteStratifiedKFold",
    "sklearn_medprep.model_selection.LeaveOneSiteOut",
    "sklearn_medprep.datasets.make_multisite_cohort",
    "sklearn_medprep.utils.estimator_checks.subject_table_checks",
    "sklearn_medprep.exceptions.SubjectTableError",
    "sklearn_medprep.cohort_report",
    "sklearn_medprep.CohortReport",
    "sklearn_medprep.plot_harmonization",
    "sklearn_medprep.plot_site_features",
    "sklearn_medprep.plot_site_effects",
    "sklearn_medprep.plot_pca_by_site",
    "sklearn_medprep.plot_subjects",
]


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("numpydoc")
    # autosummary writes generated/ next to the sources: build a copy
    source = tmp_path / "docs"
    shutil.copytree(
        DOCS,
        source,
        ignore=shutil.ignore_patterns("_build", "generated", "auto_examples"),
    )
    # index.rst links the contributor guide beside the docs folder
    shutil.copy(DOCS.parent / "CONTRIBUTING.md", tmp_path / "CONTRIBUTING.md")
    out = tmp_path / "html"
    env = {
        **os.environ,
        # the gallery runs the examples at their small sizes, offline
        "SKLEARN_MEDPREP_EXAMPLE_SMALL": "1",
        "SKLEARN_MEDPREP_EXAMPLE_OUT": str(tmp_path / "example_out"),
        "SKLEARN_MEDPREP_EXAMPLES_DIR": str(EXAMPLES),
        "SKLEARN_MEDPREP_DOCS_INTERSPHINX": "0",
        "MPLBACKEND": "Agg",
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-b",
            "html",
            "-q",
            str(source),
            str(out),
        ],
        capture_output=True,
        text=True,
        # the gallery runs every example: ~15 min on a 2-core machine under load
        timeout=2400,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr.strip() == "", proc.stderr
    for page in [
        "index",
        "api",
        "install",
        "getting_started",
        "user_guide/index",
        "user_guide/cohort",
        "auto_examples/index",
    ]:
        assert (out / f"{page}.html").is_file(), page
    for name in MAIN_API_PAGES:
        page = out / "generated" / f"{name}.html"
        assert page.is_file(), name
        assert name.rsplit(".", 1)[-1] in page.read_text(encoding="utf-8")
    # methods are documented on the estimator pages, not only listed
    combat = (out / "generated" / "sklearn_medprep.ComBatHarmonizer.html").read_text(
        encoding="utf-8"
    )
    for method in ("fit", "transform", "get_feature_names_out"):
        assert f'id="sklearn_medprep.ComBatHarmonizer.{method}"' in combat
    # the gallery: one page per example, each with at least one figure
    examples = sorted(p.stem for p in EXAMPLES.glob("plot_*.py"))
    assert examples
    gallery = (out / "auto_examples" / "index.html").read_text(encoding="utf-8")
    for stem in examples:
        page = out / "auto_examples" / f"{stem}.html"
        assert page.is_file(), stem
        assert f"{stem}.html" in gallery, stem
        images = re.findall(
            rf'<img[^>]+src="\.\./_images/(sphx_glr_{stem}_\d+\.png)"',
            page.read_text(encoding="utf-8"),
        )
        assert images, f"no figure on the gallery page of {stem}"
        for image in images:
            assert (out / "_images" / image).stat().st_size > 1000, image
    # math renders offline: MathJax is shipped with the site, not a CDN
    harmonization = (out / "user_guide" / "harmonization.html").read_text(
        encoding="utf-8"
    )
    assert "_static/mathjax/tex-chtml.js" in harmonization
    assert "cdn.jsdelivr.net" not in harmonization
    assert (out / "_static" / "mathjax" / "tex-chtml.js").is_file()
    # the landing page: the install line, the example, its figure
    index = (out / "index.html").read_text(encoding="utf-8")
    words = " ".join(html.unescape(re.sub(r"<[^>]+>", "", index)).split())
    assert 'pip install ".[all]"' in words
    for line in ("from sklearn_medprep import ComBatHarmonizer",
                 "harmonized = combat.fit_transform(table)",
                 "features with a site effect: 10 before, 0 after, of 10"):
        assert line in words, line
    figures = re.findall(r'<img[^>]+src="([^"]+\.png)"', index)
    assert figures, "no figure on the landing page"
    assert all((out / src).stat().st_size > 10_000 for src in figures), figures
    # API pages titled with the whole name; the developer helpers on their own page
    title = re.search(r"<h1>(.*?)<", combat).group(1)
    assert title == "ComBatHarmonizer", title
    api = (out / "api.html").read_text(encoding="utf-8")
    developer = (out / "developer.html").read_text(encoding="utf-8")
    for helper in ("check_subject_table_pickle", "all_estimators"):
        assert helper not in api and helper in developer, helper
    # the theme people know, and links to the libraries we build on
    assert "pydata-sphinx-theme" in index or "bd-header" in index
    assert (
        "https://scikit-learn.org/stable/modules/generated/"
        "sklearn.pipeline.Pipeline.html" in index
    )
    started = (out / "getting_started.html").read_text(encoding="utf-8")
    assert "https://pandas.pydata.org/docs/reference/api/pandas.DataFrame.html" in (
        started
    )
    install = (out / "install.html").read_text(encoding="utf-8")
    for url in ("https://docs.torchio.org/", "https://pyradiomics.readthedocs.io/"):
        assert url in install, url


# -- the pages a newcomer reads first run as printed ---------------------------
ROOT = DOCS.parent


def _blocks(text, kind):
    """The ``.. code-block:: kind`` (or ``.. plot::``) bodies of an rst page."""
    head = r"\.\. plot::\n(?:   :[\w-]+:.*\n)*" if kind == "plot" else (
        rf"\.\. code-block:: {kind}\n"
    )
    out = []
    for match in re.finditer(rf"{head}\n((?:(?: {{3,}}.*)?\n)+)", text):
        lines = match.group(1).rstrip("\n").splitlines()
        indent = min(len(li) - len(li.lstrip()) for li in lines if li.strip())
        out.append("\n".join(li[indent:] for li in lines))
    return out


def _run(code, cwd, timeout):
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _same_text(shown, printed, tol=0.02):
    """Equal line by line, numbers to ``tol`` (BLAS builds differ a little)."""
    number = r"-?\d+\.\d+|-?\d+"
    shown = [li.strip() for li in shown.strip().splitlines()]
    printed = [li.strip() for li in printed.strip().splitlines()]
    assert len(shown) == len(printed), (shown, printed)
    for a, b in zip(shown, printed):
        assert re.sub(number, "#", a) == re.sub(number, "#", b), (a, b)
        for x, y in zip(re.findall(number, a), re.findall(number, b)):
            assert float(x) == pytest.approx(float(y), abs=tol), (a, b)


def test_landing_page_example_runs_and_prints_what_it_quotes(tmp_path):
    text = (DOCS / "index.rst").read_text(encoding="utf-8")
    assert 'pip install ".[all]"' in _blocks(text, "bash")[0]
    (code,) = _blocks(text, "plot")
    assert len(code.splitlines()) <= 14, "keep the landing page's example short"
    printed = _run(code, tmp_path, 300)
    quoted = re.search(r"``(features with a site effect: [^`]*)``", text).group(1)
    assert printed.strip() == quoted


def test_install_page_check_runs(tmp_path):
    text = (DOCS / "install.rst").read_text(encoding="utf-8")
    (code,) = _blocks(text, "python")
    printed = _run(code, tmp_path, 120)
    import sklearn_medprep

    assert printed.startswith(f"sklearn-medprep {sklearn_medprep.__version__} with")


def _extras():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return set(project["optional-dependencies"])


def _shell_blocks():
    pages = {
        "README.md": re.findall(r"```bash\n(.*?)```",
                                (ROOT / "README.md").read_text(encoding="utf-8"),
                                re.S),
    }
    for page in ("index.rst", "install.rst"):
        pages[page] = _blocks((DOCS / page).read_text(encoding="utf-8"), "bash")
    return pages


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib")
def test_shell_commands_in_readme_and_docs_name_what_exists():
    # installs cannot run offline: their extras, make targets and docs-build
    # command are checked against the project's files instead
    extras = _extras()
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    build = "python -m sphinx -b html docs docs/_build/html"
    for page, blocks in _shell_blocks().items():
        assert blocks, page
        for block in blocks:
            for line in block.splitlines():
                command = line.split("#", 1)[0].strip()
                if not command:
                    continue
                for group in re.findall(r"\[([\w,-]+)\]", command):
                    assert set(group.split(",")) <= extras, (page, line)
                make = re.match(r"(?:\w+=\S+ )*make (\S+)", command)
                if make:
                    assert make.group(1) in targets, (page, line)
                if "sphinx" in command:
                    assert command == build, (page, line)
                if command.startswith("pip install"):
                    assert re.match(
                        r'pip install (torch --index-url \S+|"?(\.|sklearn-medprep)'
                        r'(\[[\w,-]+\])?"?)$', command), (page, line)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    # the registry lines come after the clone install, marked as not available yet
    assert readme.index('pip install ".[all]"') < readme.index(
        "pip install sklearn-medprep")
    assert "after publication" in readme.split("pip install sklearn-medprep")[0]
    assert build in readme


def test_readme_quotes_the_missing_extra_errors_exactly(monkeypatch):
    from sklearn_medprep import plot_harmonization
    from sklearn_medprep.datasets import make_multisite_features
    from sklearn_medprep.images._walk import as_transform

    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    table = make_multisite_features(20, 3, 2, random_state=0)
    for name in ("matplotlib", "matplotlib.pyplot", "torchio"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError) as plot_error:
        plot_harmonization(table, table, "site")
    with pytest.raises(ImportError) as torchio_error:
        as_transform([])
    for error in (plot_error, torchio_error):
        assert f"`{error.value}`" in readme, str(error.value)


def test_gallery_intro_lists_every_example_and_no_other():
    intro = (EXAMPLES / "README.txt").read_text(encoding="utf-8")
    listed = re.findall(r":ref:`sphx_glr_auto_examples_(\w+)\.py`", intro)
    present = sorted(p.stem for p in EXAMPLES.glob("plot_*.py"))
    assert sorted(listed) == present
    assert len(listed) == len(set(listed))


@pytest.mark.slow
def test_getting_started_runs_as_printed(tmp_path):
    # the page's blocks in order, as a reader pastes them; each "It prints:"
    # block is what the code above it prints
    text = (DOCS / "getting_started.rst").read_text(encoding="utf-8")
    parts = re.split(r"It prints:\n", text)
    assert len(parts) == 3, "two code blocks, each followed by its output"
    code, shown = [], []
    for part, after in zip(parts, parts[1:]):
        code.append("\n".join(_blocks(part, "python")))
        shown.append(_blocks(after, "text")[0])
    marker = "print('@@@ next block')"
    printed = _run(f"\n{marker}\n".join(code), tmp_path, 1800).split("@@@ next block\n")
    for block_shown, block_printed in zip(shown, printed):
        _same_text(block_shown, block_printed)
    # a realistic cohort: not a perfect score, and compared with the site alone
    scores = re.findall(r"ROC AUC, [^:]+:\s+([\d.]+)", printed[1])
    assert len(scores) == 2 and float(scores[0]) < 0.95, printed[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["medprep_output"]
