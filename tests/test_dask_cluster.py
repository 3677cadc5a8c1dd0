"""A real dask cluster: a ``dask scheduler`` and two ``dask worker`` processes.

The test starts them itself on 127.0.0.1 (free ports, one thread each), each
worker with its own ``--local-directory`` and a working directory that is not
the client's, so that a relative path sent as is would mean another file there,
or nothing. Relative image paths (as ``make_multisite_cohort(path="data")``
returns them), a relative ``memory=`` folder and relative ``scratch_dir``/
``output_dir`` must work, and give results bit-identical to the serial run.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from sklearn_medprep import RadiomicsExtractor, VoxelComBatHarmonizer
from sklearn_medprep.datasets import make_multisite_cohort, make_voxel_cohort
from sklearn_medprep.utils import count_extractions
from sklearn_medprep.utils._paths import on_worker

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {"featureClass": {"firstorder": [], "glcm": ["Contrast"]},
            "setting": {"binWidth": 25, "label": 1}}


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``(address, client folder)``; scheduler and workers killed at the end."""
    base = tmp_path_factory.mktemp("cluster")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    processes = []
    log = open(base / "cluster.log", "w")  # noqa: SIM115 (closed below)
    try:
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host",
             "127.0.0.1", "--port", str(port), "--no-dashboard"],
            cwd=base, env=env, stdout=log, stderr=subprocess.STDOUT,
        ))
        for k in range(2):
            home = base / f"worker{k}"  # a cwd where relative paths are wrong
            (home / "data").mkdir(parents=True)
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address,
                 "--nthreads", "1", "--no-nanny", "--no-dashboard", "--host",
                 "127.0.0.1", "--local-directory", str(base / f"local{k}"),
                 "--name", f"w{k}"],
                cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT,
            ))
        client_dir = base / "client"
        client_dir.mkdir()
        deadline = time.monotonic() + 60
        while True:
            try:
                with distributed.Client(address, timeout=5) as client:
                    left = max(1, deadline - time.monotonic())
                    client.wait_for_workers(2, timeout=left)
                break
            except (OSError, TimeoutError, distributed.TimeoutError) as exc:
                if time.monotonic() > deadline or any(
                        p.poll() is not None for p in processes):
                    log.flush()
                    pytest.fail(f"dask cluster did not start ({exc}):\n"
                                + (base / "cluster.log").read_text()[-3000:])
                time.sleep(0.5)
        yield address, client_dir
    finally:
        for process in reversed(processes):
            _stop(process)
        log.close()


@pytest.fixture
def client(cluster, monkeypatch):
    """A client whose working directory is its own folder (not the workers')."""
    address, client_dir = cluster
    monkeypatch.chdir(client_dir)
    with distributed.Client(address, timeout=30) as client:
        yield client


def _arrays(column):
    return [sitk.GetArrayFromImage(sitk.ReadImage(str(cell))) for cell in column]


def test_relative_image_paths_and_memory(client):
    table = make_multisite_cohort(6, 2, shape=(24, 24, 20), path="data",
                                  random_state=0)
    assert not os.path.isabs(table["image"].iloc[0])  # relative, as documented
    serial = RadiomicsExtractor(settings=SETTINGS).fit_transform(table)
    extractor = RadiomicsExtractor(settings=SETTINGS, memory="cache", n_jobs=2)
    with joblib.parallel_config(backend="dask"):
        first = extractor.fit_transform(table)
        again = extractor.fit_transform(table)
    # each image extracted once over two runs, in one cache (the client's)
    assert count_extractions(os.path.abspath("cache")) == len(table)
    assert extractor.memory == "cache"  # the parameter is not changed
    for out in (first, again):
        pd.testing.assert_frame_equal(out, serial, check_exact=True)
    # the tasks did run on the two workers
    workers = {w["name"] for w in client.scheduler_info()["workers"].values()}
    assert workers == {"w0", "w1"}


def test_relative_scratch_and_output_dirs(client):
    table, _ = make_voxel_cohort(12, 2, shape=(8, 9, 7), path="vox",
                                 random_state=3, suffix=".nii")
    serial = VoxelComBatHarmonizer(dtype="float64", chunk_size=40)
    expected = serial.fit_transform(table)
    combat = VoxelComBatHarmonizer(dtype="float64", chunk_size=40, n_jobs=2,
                                   scratch_dir="scratch", output_dir="out")
    Path("scratch").mkdir()
    with joblib.parallel_config(backend="dask"):
        out = combat.fit_transform(table)
    assert combat.scratch_dir == "scratch" and combat.output_dir == "out"
    assert os.listdir("scratch") == []  # the scratch file was removed
    np.testing.assert_array_equal(combat.gamma_star_, serial.gamma_star_)
    np.testing.assert_array_equal(combat.delta_star_, serial.delta_star_)
    files = list(out["image"])
    assert files == [os.path.abspath(os.path.join("out", f"{label}.nii.gz"))
                     for label in table.index]
    for got, want in zip(_arrays(files), (sitk.GetArrayFromImage(image)
                                          for image in expected["image"])):
        np.testing.assert_array_equal(got, want)


def test_unreachable_folder_names_folder_and_worker(client):
    future = client.submit(on_worker, len, {"scratch_dir": "/no/such/scratch"},
                           [1, 2], pure=False)
    with pytest.raises(FileNotFoundError) as info:
        future.result(timeout=30)
    message = str(info.value)
    assert "scratch_dir folder '/no/such/scratch' cannot be reached from dask " \
        "worker tcp://127.0.0.1:" in message
    assert "shared by the client and the workers" in message
