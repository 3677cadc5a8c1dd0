"""Throughput of the TorchIO estimators against a plain TorchIO loop.

The same subjects (in-memory, or read from NIfTI files) and the same transforms
are run through

- a plain loop: ``transform(tio.Subject(image=..., mask=...))`` per subject;
- ``TorchIOAugmenter.fit_transform`` (n_jobs=1 and n_jobs=2);
- ``TorchIOPreprocessor.transform`` against the same plain loop;
- ``TorchIOCollate`` on batches of ``ImageTensorizer`` output against a plain
  loop over the samples.

Ratios are estimator time / plain time measured in the same run (goal for the
overhead at n_jobs=1: <= 1.05); the plain loop seeds each subject with the seed
the augmenter uses for that row, so both draw the same random parameters and do
the same work. Best of ``--repeat`` runs.

    python benchmarks/bench_torchio.py --quick
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

# measure the checkout this script belongs to, not an installed copy
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchio as tio  # noqa: E402

from sklearn_medprep import (
    ImageTensorizer,
    TorchIOAugmenter,
    TorchIOCollate,
    TorchIOPreprocessor,
)
from sklearn_medprep.datasets import make_multisite_cohort  # noqa: E402
from sklearn_medprep.utils._random import seed_sequence, spawn_seeds  # noqa: E402


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def compare(repeat, estimator_fn, plain_fn):
    """Best (wall, cpu) times of both, runs interleaved so that load hits both."""
    ours, plain = [], []
    for _ in range(repeat):
        ours.append(_timed(estimator_fn))
        plain.append(_timed(plain_fn))
    best = lambda runs: tuple(min(t[i] for t in runs) for i in (0, 1))  # noqa: E731
    return best(ours), best(plain)


def row_seeds(n, random_state=0):
    """The seeds TorchIOAugmenter(random_state=0) draws its rows with."""
    return spawn_seeds(seed_sequence(random_state).spawn(1)[0], n)


def plain_loop(table, transform, seeds=None):
    """What a user writes with TorchIO alone (seeding each subject the same way)."""
    out = []
    for k, (image, mask) in enumerate(zip(table["image"], table["mask"])):
        if isinstance(image, str):
            subject = tio.Subject(image=tio.ScalarImage(image), mask=tio.LabelMap(mask))
        else:
            subject = tio.Subject(image=image, mask=mask)
        if seeds is not None:
            torch.manual_seed(seeds[k])
        out.append(transform(subject))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small size")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n, side = (16, 32) if args.quick else (32, 48)
    torch.set_num_threads(1)

    folder = tempfile.mkdtemp()
    on_disk = make_multisite_cohort(
        n, 2, shape=(side, side + 4, side - 4), path=folder, random_state=0
    )
    to_memory = TorchIOPreprocessor([tio.ToCanonical()]).fit(on_disk)
    in_memory = to_memory.transform(on_disk)  # tio images, one grid per site
    augment = tio.Compose(
        [
            tio.RandomBiasField(),
            tio.RandomMotion(num_transforms=1),
            tio.RandomGhosting(),
            tio.RandomSpike(),
            tio.RandomElasticDeformation(max_displacement=4, num_control_points=5),
            tio.RandomAffine(degrees=10),
        ]
    )
    print(f"{n} subjects of about {side}^3 voxels, {args.repeat} repeats, best time")
    print(f"augmentation: {augment}")
    rows = []

    for label, table in (("in-memory", in_memory), ("from files", on_disk)):
        seeds = row_seeds(len(table))
        for n_jobs in (1, 2):
            est = TorchIOAugmenter(augment, random_state=0, n_jobs=n_jobs)
            took, plain = compare(
                args.repeat,
                lambda t=table, e=est: e.fit_transform(t),
                lambda t=table, s=seeds: plain_loop(t, augment, s),
            )
            rows.append((f"TorchIOAugmenter {label}, n_jobs={n_jobs}", took, plain))

    preprocess = tio.Compose(
        [tio.Resample(1.5), tio.CropOrPad((side // 2,) * 3), tio.ZNormalization()]
    )
    pre = TorchIOPreprocessor(preprocess).fit(on_disk)
    took, plain = compare(
        args.repeat,
        lambda: pre.transform(on_disk),
        lambda: plain_loop(on_disk, preprocess),
    )
    rows.append(("TorchIOPreprocessor.transform from files", took, plain))

    X = ImageTensorizer().fit_transform(pre.transform(on_disk))
    tensors = torch.as_tensor(X)
    y = np.zeros(len(X), dtype=np.int64)
    batch = [(tensors[i], y[i]) for i in range(len(X))]
    collate = TorchIOCollate(augment, random_state=0)

    def plain_batch():
        torch.manual_seed(0)
        return torch.stack([augment(x) for x in tensors])

    took, plain = compare(args.repeat, lambda: collate(batch), plain_batch)
    rows.append(("TorchIOCollate, one batch of all samples", took, plain))

    width = max(len(r[0]) for r in rows)
    print(
        "wall-clock seconds, and process CPU seconds (main process only: for "
        "n_jobs=2 the workers' CPU is not counted, read the wall ratio)"
    )
    print(
        f"{'':{width}}  {'ours':>7} {'plain':>7} {'wall ratio':>10}"
        f"  {'ours':>7} {'plain':>7} {'CPU ratio':>9}"
    )
    for name, (wall, cpu), (plain_wall, plain_cpu) in rows:
        print(
            f"{name:{width}}  {wall:7.3f} {plain_wall:7.3f} {wall / plain_wall:10.3f}"
            f"  {cpu:7.3f} {plain_cpu:7.3f} {cpu / plain_cpu:9.3f}"
        )


if __name__ == "__main__":
    main()
