"""CovBatHarmonizer against the CovBat authors' own Python code, run in the test.

``_reference/covbat_authors.py`` is the authors' ``Python/covbat.py`` (Chen et
al., github.com/andy1764/CovBat_Harmonization, Artistic-2.0), vendored verbatim.
Their Python computes the empirical-Bayes prior variance of the site locations
(``t2``, tau^2 of Johnson et al. 2007) with numpy's default ``ddof=0``
(``gamma_hat`` is a numpy array there; every other variance of theirs is a
pandas one, ``ddof=1``). Their R package (``matrixStats::rowVars``), sva's
ComBat, neuroCombat / neuroHarmonize and this library use ``ddof=1``, the
unbiased sample variance. So:

- as published, their CovBat differs from ours by a small, non-zero amount
  (pinned below, printed with ``-s``);
- with that one line at ``ddof=1`` (their source, patched here at load time and
  nowhere else) it equals ours to rounding error;
- the same holds for their ``combat`` (empirical Bayes) against neuroHarmonize,
  whose ComBat is the one this library follows (numpy-1 stack only).

Shim (pandas >= 2 removed ``Series.iteritems``, which their code calls to find
an intercept column): ``iteritems`` is aliased to ``items`` during these tests.
"""

import contextlib
import hashlib
import io
import os
import types
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sklearn_medprep import ComBatHarmonizer, CovBatHarmonizer
from sklearn_medprep.datasets import make_multisite_features

REFERENCE = Path(__file__).parent / "_reference" / "covbat_authors.py"
VERBATIM = "# ---- verbatim upstream Python/covbat.py below this line ----\n"
UPSTREAM_SHA256 = "ef596d4a3b014a6face57e9d2a98b6060b45d20cfc63aa0ee460fa5ebbd7ea18"
T2_LINE = "t2 = gamma_hat.var(axis=1)"  # their prior variance, numpy ddof=0
T2_DDOF1 = "t2 = gamma_hat.var(axis=1, ddof=1)"  # the one change
TOL = 1e-10


def _source():
    return REFERENCE.read_text(encoding="utf-8")


def _with_ddof1(source, function):
    """``source`` with the ``t2`` line of ``function`` (only) at ``ddof=1``."""
    start = source.index(f"\ndef {function}(")
    end = source.find("\ndef ", start + 1)
    chunk = source[start:end]
    assert chunk.count(T2_LINE) == 1, chunk
    return source[:start] + chunk.replace(T2_LINE, T2_DDOF1) + source[end:]


def _module(source, name):
    module = types.ModuleType(name)
    module.__file__ = str(REFERENCE)
    exec(compile(source, str(REFERENCE), "exec"), module.__dict__)
    return module


@pytest.fixture(scope="module")
def authors():
    """Their module as published, and with one ``t2`` line at ``ddof=1``."""
    source = _source()
    return {
        "published": _module(source, "covbat_authors"),
        "covbat_ddof1": _module(_with_ddof1(source, "covbat"), "covbat_authors_1"),
        "combat_ddof1": _module(_with_ddof1(source, "combat"), "covbat_authors_2"),
    }


@pytest.fixture(autouse=True)
def _iteritems_shim(monkeypatch):
    # SHIM, not maths: pandas >= 2 has no Series.iteritems (their intercept check)
    if not hasattr(pd.Series, "iteritems"):
        monkeypatch.setattr(pd.Series, "iteritems", pd.Series.items, raising=False)


def _run(func, data, feats, covs, **kwargs):
    """Their function on our table: features x subjects in, subjects x features out."""
    with (
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        out = func(
            data[feats].T,
            data["site"],
            model=data[covs].copy(),  # they add a column to it
            numerical_covariates=list(covs),
            **kwargs,
        )
    assert out.shape == (len(feats), len(data))
    return out.T.to_numpy()


@pytest.fixture(scope="module")
def table():
    df = make_multisite_features(
        n_subjects=97, n_features=9, site_sizes=[41, 17, 39], random_state=3
    )
    # float32-representable age: neuroCombat casts covariates to float32
    df["age"] = df["age"].astype(np.float32).astype(np.float64)
    df["male"] = (df["sex"] == "M").astype(np.float64)
    feats = [c for c in df.columns if c.startswith("f")]
    return df[[*feats, "site", "age", "male"]], feats


def test_vendored_file_is_the_authors_verbatim():
    header, marker, body = _source().partition(VERBATIM)
    assert marker and all(line.startswith("#") for line in header.splitlines())
    assert hashlib.sha256(body.encode("utf-8")).hexdigest() == UPSTREAM_SHA256
    # the ddof=0 prior variance is in both their covbat and their combat
    assert body.count(T2_LINE) == 2 and "ddof" not in body


# max |ours - theirs as published| on `table`, measured by this test (pinned)
PUBLISHED_DIFF = {"pct_var": 4.0326e-3, "n_components": 1.0403e-2}


@pytest.mark.parametrize(
    "case, ours_kw, their_kw",
    [("pct_var", {}, {}), ("n_components", {"n_components": 3}, {"n_pc": 3})],
)
def test_covbat_equals_authors_python_up_to_the_prior_variance_ddof(
    authors, table, case, ours_kw, their_kw
):
    df, feats = table
    covs = ["age", "male"]
    ours = CovBatHarmonizer(covariates=covs, **ours_kw).fit_transform(df).to_numpy()
    published = _run(authors["published"].covbat, df, feats, covs, **their_kw)
    ddof1 = _run(authors["covbat_ddof1"].covbat, df, feats, covs, **their_kw)
    diff_published = np.abs(ours - published).max()
    diff_ddof1 = np.abs(ours - ddof1).max()
    print(
        f"\nCovBat ({case}) vs the authors' covbat.py: as published (t2 ddof=0) "
        f"{diff_published:.6g} max abs, with t2 ddof=1 {diff_ddof1:.3g}"
    )
    # (a) as published: a real, non-zero difference, of the size measured
    assert diff_published == pytest.approx(PUBLISHED_DIFF[case], rel=1e-3)
    # (b) their line at ddof=1: equal
    assert diff_ddof1 <= TOL
    # so the whole difference is that line's
    np.testing.assert_allclose(published - ddof1, published - ours, rtol=0, atol=TOL)
    # and CovBat is not ComBat here
    combat = ComBatHarmonizer(covariates=covs).fit_transform(df).to_numpy()
    assert np.abs(combat - ours).max() > 0.05


@pytest.mark.shared_data
@pytest.mark.slow
def test_covbat_vs_authors_python_on_fcon1000(authors, shared_data):
    """Real cortical thickness (FCON1000, 150 features, 22 sites of >= 5 subjects)."""
    table = pd.read_csv(shared_data / "multisite" / "pcn_fcon1000.csv")
    table = table[table["site"].map(table["site"].value_counts()) >= 5]
    table = table.reset_index(drop=True)
    feats = [c for c in table.columns if c.endswith("_thickness")]
    covs = ["age", "sex"]
    df = table[[*feats, "site", *covs]]
    ours = CovBatHarmonizer(covariates=covs).fit_transform(df).to_numpy()
    published = _run(authors["published"].covbat, df, feats, covs)
    ddof1 = _run(authors["covbat_ddof1"].covbat, df, feats, covs)
    diff_published = np.abs(ours - published).max()
    diff_ddof1 = np.abs(ours - ddof1).max()
    print(
        f"\nFCON1000 CovBat vs the authors' covbat.py: as published (t2 ddof=0) "
        f"{diff_published:.6g} max abs, with t2 ddof=1 {diff_ddof1:.3g}"
    )
    assert diff_published == pytest.approx(2.7351e-4, rel=1e-3)
    assert diff_ddof1 <= TOL


# --- their ComBat against neuroHarmonize's (the numpy-1 stack) -----------------
def _neuroharmonize():
    if os.environ.get("SKLEARN_MEDPREP_REQUIRE_REFERENCE"):
        import neuroHarmonize  # CI's numpy-1 leg: fail, never skip

        return neuroHarmonize
    return pytest.importorskip("neuroHarmonize")


def test_authors_combat_at_ddof1_equals_neuroharmonize_and_ours(authors, table):
    """neuroHarmonize's EB ComBat uses ddof=1: their combat matches it only so."""
    neuroharmonize = _neuroharmonize()
    df, feats = table
    covs = ["age", "male"]
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, learned = neuroharmonize.harmonizationLearn(
            df[feats].to_numpy(), df[["site", *covs]].rename(columns={"site": "SITE"})
        )
    ours = ComBatHarmonizer(covariates=covs).fit_transform(df).to_numpy()
    published = _run(authors["published"].combat, df, feats, covs)
    ddof1 = _run(authors["combat_ddof1"].combat, df, feats, covs)
    diff_published = np.abs(learned - published).max()
    diff_ddof1 = np.abs(learned - ddof1).max()
    print(
        f"\nComBat: neuroHarmonize vs the authors' combat (covbat.py): as published "
        f"{diff_published:.6g} max abs, with t2 ddof=1 {diff_ddof1:.3g}; "
        f"ours vs neuroHarmonize {np.abs(ours - learned).max():.3g}"
    )
    assert diff_published > 1e-4
    assert diff_ddof1 <= TOL
    assert np.abs(ours - learned).max() <= TOL
