"""
Radiomics extraction on a dask.distributed cluster
==================================================

:class:`~sklearn_medprep.RadiomicsExtractor` runs the work of each row
(reading, checking, PyRadiomics extraction) through joblib, so the same code
scales from one core to a cluster: under ``joblib.parallel_config(backend=
"dask")`` the rows are sent to the workers of a dask.distributed
:class:`~distributed.Client`. Here a :class:`~distributed.LocalCluster` of two
worker processes (one thread each, on the loopback interface) stands in for a
real cluster, e.g. one started by dask-jobqueue on an HPC scheduler. The
features must equal those of the serial run, row for row. With a cache
(``memory=``) on a cluster, give a folder every worker can reach.

The worker processes are started by ``spawn``, which imports this script
again: everything with side effects therefore lives in functions called under
``if __name__ == "__main__":``, or the workers would redo it.
"""

# %%
import os
import shutil
import tempfile
import time
from pathlib import Path

import joblib
import pandas as pd
from distributed import Client, LocalCluster

from sklearn_medprep import RadiomicsExtractor
from sklearn_medprep.datasets import make_multisite_cohort
from sklearn_medprep.utils import count_extractions

SMALL = os.environ.get("SKLEARN_MEDPREP_EXAMPLE_SMALL", "") not in ("", "0")
SETTINGS = {
    "featureClass": {
        "firstorder": [],
        "glcm": ["Contrast", "JointEntropy", "Idm"],
        "glrlm": ["RunEntropy"],
        "shape": ["VoxelVolume", "Sphericity"],
    },
    "setting": {"binWidth": 25},
}


def output_folder():
    out = Path(
        os.environ.get("SKLEARN_MEDPREP_EXAMPLE_OUT")
        or tempfile.mkdtemp(prefix="medprep_example_")
    )
    out.mkdir(parents=True, exist_ok=True)
    return out


def extractor(**kwargs):
    return RadiomicsExtractor(label=1, settings=SETTINGS, **kwargs)


# %%
# A cohort on disk and the serial reference
# -----------------------------------------
# The workers read the NIfTI files themselves; only paths travel to them.
def serial_reference(out):
    n_subjects, fov = (12, (20, 22, 18)) if SMALL else (30, (32, 34, 30))
    table = make_multisite_cohort(
        n_subjects, 3, shape=fov, path=out / "cohort", random_state=0
    )
    start = time.perf_counter()
    serial = extractor().fit_transform(table)
    print(
        f"serial: {serial.shape[0]} rows x {serial.shape[1]} columns "
        f"in {time.perf_counter() - start:.1f} s"
    )
    return table, serial


# %%
# The same extraction on a LocalCluster
# -------------------------------------
# The cluster and the client are closed by their ``with`` blocks, even on
# error. Every extraction that actually runs appends its process id to a log in
# the cache folder, which tells where the work happened.
def on_cluster(table, cache):
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        n_workers = len(client.scheduler_info()["workers"])
        print(f"cluster: {n_workers} workers at {cluster.scheduler_address}")
        start = time.perf_counter()
        with joblib.parallel_config(backend="dask"):
            features = extractor(memory=cache).fit_transform(table)
        print(
            f"dask: {features.shape[0]} rows in {time.perf_counter() - start:.1f} s "
            "(cluster start-up excluded)"
        )
        worker_pids = set(client.run(os.getpid).values())
    print("cluster closed:", cluster.status.name)
    return features, worker_pids


# %%
# Run and compare
# ---------------
if __name__ == "__main__":
    out = output_folder()
    table, serial = serial_reference(out)
    cache = out / "dask_cache"
    shutil.rmtree(cache, ignore_errors=True)  # a fresh cache: every row extracts
    distributed, worker_pids = on_cluster(table, cache)
    pd.testing.assert_frame_equal(distributed, serial)
    print("features equal the serial run: True")
    log = cache / "sklearn_medprep_radiomics_extractions.log"
    pids = {int(line.split()[-1]) for line in log.read_text().splitlines()}
    print(
        f"extractions: {count_extractions(cache)} for {len(table)} rows, in "
        f"{len(pids & worker_pids)} worker processes "
        f"(all on the workers: {pids <= worker_pids})"
    )

    # %%
    # Figure: where the extractions ran
    # ---------------------------------
    import matplotlib.pyplot as plt

    per_process = pd.Series(
        [int(line.split()[-1]) for line in log.read_text().splitlines()]
    ).value_counts()
    fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
    ax.bar([f"worker pid {pid}" for pid in per_process.index], per_process.to_numpy())
    ax.set_xlabel("dask worker process")
    ax.set_ylabel("images extracted")
    where = "all on the workers" if pids <= worker_pids else "some outside"
    ax.set_title(f"{count_extractions(cache)} extractions, {where}")
