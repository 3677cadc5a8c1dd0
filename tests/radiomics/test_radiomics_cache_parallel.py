"""Caching (counted extractions), n_jobs/dask invariance, Pipeline use, persistence."""

import subprocess
import sys
import textwrap

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_medprep import RadiomicsExtractor
from sklearn_medprep.datasets import make_multisite_cohort
from sklearn_medprep.exceptions import MedprepWarning
from sklearn_medprep.io._read import to_sitk
from sklearn_medprep.utils import count_extractions

SETTINGS = {
    "featureClass": {"firstorder": [], "glcm": ["Contrast", "JointEntropy"],
                     "shape": ["VoxelVolume", "Sphericity"]},
    "setting": {"binWidth": 25},
}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("radiomics_cohort")
    return make_multisite_cohort(
        10, 2, shape=(20, 22, 18), path=folder, random_state=0
    )


def _extractor(**kwargs):
    return RadiomicsExtractor(label=2, settings=SETTINGS, **kwargs)


def _in_memory(table):
    out = table.copy()
    for column in ("image", "mask"):
        out[column] = pd.Series(
            [to_sitk(cell) for cell in table[column]], index=table.index,
            dtype=object,
        )
    return out


def test_cache_extracts_each_image_once_keyed_on_content(cohort, tmp_path):
    memory = tmp_path / "cache"
    first = _extractor(memory=memory).fit_transform(cohort)
    assert count_extractions(memory) == len(cohort)
    again = _extractor(memory=str(memory)).fit(cohort).transform(cohort)
    assert count_extractions(memory) == len(cohort)
    pd.testing.assert_frame_equal(again, first)
    # the same images in memory hit the same entries
    from_memory = _extractor(memory=joblib.Memory(str(memory), verbose=0))
    pd.testing.assert_frame_equal(
        from_memory.fit_transform(_in_memory(cohort)), first
    )
    assert count_extractions(memory) == len(cohort)
    # a changed setting or label extracts again
    changed = {**SETTINGS, "setting": {"binWidth": 10}}
    RadiomicsExtractor(label=2, settings=changed, memory=memory).fit_transform(cohort)
    assert count_extractions(memory) == 2 * len(cohort)
    _extractor(memory=memory).set_params(label=1).fit_transform(cohort.iloc[:3])
    assert count_extractions(memory) == 2 * len(cohort) + 3
    # a changed image extracts again
    modified = _in_memory(cohort.iloc[:1])
    modified["image"] = pd.Series(
        [modified["image"].iloc[0] * 2.0], index=modified.index, dtype=object
    )
    out = _extractor(memory=memory).fit_transform(modified)
    assert count_extractions(memory) == 2 * len(cohort) + 4
    assert out["original_firstorder_Mean"].iloc[0] == pytest.approx(
        2 * first["original_firstorder_Mean"].iloc[0], rel=1e-6
    )


def _pipeline(memory=None, **kwargs):
    return make_pipeline(
        _extractor(memory=memory, passthrough=[], **kwargs),
        StandardScaler(),
        LogisticRegression(C=1.0),
    )


def test_cross_validate_and_grid_search_extract_each_image_once(cohort, tmp_path):
    memory = tmp_path / "cache"
    y = cohort["y"].to_numpy()
    cv = StratifiedKFold(4, shuffle=True, random_state=0)
    scores = cross_validate(_pipeline(memory), cohort, y, cv=cv)
    assert len(scores["test_score"]) == 4
    assert count_extractions(memory) == len(cohort)
    search = GridSearchCV(
        _pipeline(memory), {"logisticregression__C": [0.01, 0.1, 1.0, 10.0]}, cv=cv
    )
    search.fit(cohort, y)
    assert count_extractions(memory) == len(cohort)
    # without cache: the same scores
    plain = cross_validate(_pipeline(None), cohort, y, cv=cv)
    np.testing.assert_array_equal(plain["test_score"], scores["test_score"])
    # a grid over an extraction setting extracts once per setting
    search = GridSearchCV(
        _pipeline(memory),
        {"radiomicsextractor__settings": [SETTINGS, {**SETTINGS,
                                                     "setting": {"binWidth": 50}}]},
        cv=cv,
    ).fit(cohort, y)
    assert count_extractions(memory) == 2 * len(cohort)


def test_pipeline_survives_joblib_dump_load_in_new_process(cohort, tmp_path):
    y = cohort["y"].to_numpy()
    pipe = _pipeline().fit(cohort, y)
    expected = pipe.predict_proba(cohort)
    joblib.dump(pipe, tmp_path / "model.joblib")
    cohort.to_pickle(tmp_path / "table.pkl")
    script = textwrap.dedent(
        f"""
        import joblib, numpy as np, pandas as pd
        pipe = joblib.load({str(tmp_path / "model.joblib")!r})
        table = pd.read_pickle({str(tmp_path / "table.pkl")!r})
        np.save({str(tmp_path / "proba.npy")!r}, pipe.predict_proba(table))
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    np.testing.assert_array_equal(np.load(tmp_path / "proba.npy"), expected)


def test_n_jobs_gives_identical_results_and_errors(cohort, tmp_path):
    table = _in_memory(cohort).iloc[:6]
    table["image"] = table["image"].astype(object)
    images = table["image"].tolist()
    images[3] = str(tmp_path / "missing.nrrd")  # paths and images mixed
    images[4] = cohort["image"].iloc[4]
    table["image"] = pd.Series(images, index=table.index, dtype=object)
    outs = []
    for n_jobs in (1, 2):
        extractor = _extractor(n_jobs=n_jobs, on_error="nan")
        with pytest.warns(MedprepWarning, match="1 of 6"):
            outs.append(extractor.fit_transform(table))
        assert list(extractor.extraction_errors_["row"]) == [table.index[3]]
    pd.testing.assert_frame_equal(outs[0], outs[1])
    assert outs[0].iloc[3, :-4].isna().all()
    with joblib.parallel_config(backend="threading", n_jobs=2):
        with pytest.warns(MedprepWarning):
            threaded = _extractor(on_error="nan").fit_transform(table)
    pd.testing.assert_frame_equal(threaded, outs[0])


def test_verbose_shows_progress_bar(cohort, capsys):
    _extractor(verbose=True).fit_transform(cohort.iloc[:3])
    err = capsys.readouterr().err
    assert "radiomics" in err and "3/3" in err


@pytest.mark.slow
def test_dask_localcluster_backend(cohort, tmp_path):
    distributed = pytest.importorskip("distributed")
    expected = _extractor().fit_transform(cohort)
    memory = tmp_path / "cache"
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None,
    ) as cluster, distributed.Client(cluster) as client:
        with joblib.parallel_config(backend="dask"):
            out = _extractor(memory=memory).fit_transform(cohort)
        workers = client.run(lambda: __import__("os").getpid())
    pd.testing.assert_frame_equal(out, expected)
    assert count_extractions(memory) == len(cohort)
    # the extractions ran in the dask worker processes
    with open(memory / "sklearn_medprep_radiomics_extractions.log") as handle:
        pids = {int(line.split()[-1]) for line in handle}
    assert pids <= set(workers.values())


def test_unusable_cache_folder_is_reported_as_such(cohort, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    extractor = _extractor(memory=blocker / "cache")
    with pytest.raises(OSError, match="cannot use the radiomics cache folder") as err:
        extractor.fit_transform(cohort.drop(columns="y"))
    assert "set_params(memory=None)" in str(err.value)
    # the same extractor without the cache works
    out = extractor.set_params(memory=None).fit_transform(cohort.drop(columns="y"))
    assert out.index.equals(cohort.index)


def test_fitted_extractor_whose_cache_folder_is_gone(cohort, tmp_path):
    # as for a fitted pipeline loaded on a machine where the cache path of the
    # training machine cannot be created
    import shutil

    cache = tmp_path / "cache"
    X = cohort.drop(columns="y")
    extractor = _extractor(memory=cache).fit(X)
    shutil.rmtree(cache)
    cache.write_text("now a file")
    with pytest.raises(OSError, match="cannot use the radiomics cache folder"):
        extractor.transform(X)
