"""Patch-based training: memory bounded by the queue, overhead against plain TorchIO.

1. Peak memory. Each configuration trains ``PatchNeuralNetClassifier`` for one
   epoch in a fresh subprocess, on a cohort of NIfTI files (the table holds
   paths), and prints the peak resident set size (``VmHWM``) and its increase
   over the RSS right before ``fit``. Two cohort sizes at the same queue length,
   then two queue lengths at the same cohort: the peak should follow the
   queue, not the cohort. The size of the cohort as one float32 array (what
   ``ImageTensorizer`` would build) is printed for contrast.
2. Overhead per training batch. The same subjects read from the same NIfTI
   files, uniform sampler, patch size, samples per volume, queue length
   (shuffled subjects and patches), module with the same initial weights, SGD
   optimizer, batch size and epochs, trained by

   - a plain TorchIO loop: ``tio.Queue(tio.SubjectsDataset(...))`` + a
     ``tio.SubjectsLoader``, forward, loss, backward, step per batch;
   - ``PatchNeuralNetClassifier.fit`` (skorch's loop, train_split=None).

   torch runs on ``--threads`` threads (default 1), the queue and loader in
   the main process. ``--repeat`` rounds (default 7) alternate which side goes
   first. Per round and side, each epoch's batch loop is timed (wall clock and
   the process's CPU time); ms per batch = time / batches, and the ratio ours /
   plain is printed as the median over rounds with its range, for all epochs,
   for epoch 1 (where each file is read through the library's checked reader
   once) and for the later epochs (the steady state; goal <= 1.05).

    python benchmarks/bench_patches.py --quick
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# measure the checkout this script belongs to, not an installed copy
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

SIZES = {
    # shape, cohorts, queues, patch, samples per volume, batch, epochs (overhead)
    "quick": dict(shape=(48, 48, 48), cohorts=(6, 18), queues=(8, 64), patch=24,
                  spv=4, batch=4, epochs=4),
    "full": dict(shape=(96, 96, 96), cohorts=(16, 48), queues=(16, 128), patch=48,
                 spv=4, batch=8, epochs=3),
}


def _module():
    from torch import nn

    return nn.Sequential(
        nn.Conv3d(1, 8, 3, stride=2),
        nn.ReLU(),
        nn.Conv3d(8, 8, 3, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool3d(1),
        nn.Flatten(),
        nn.Linear(8, 2),
    )


def _rss_kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _net(size, queue_length, epochs, module=None, **params):
    import torch

    from sklearn_medprep import PatchNeuralNetClassifier

    return PatchNeuralNetClassifier(
        _module() if module is None else module,
        patch_size=size["patch"],
        samples_per_volume=size["spv"],
        queue_length=queue_length,
        batch_size=size["batch"],
        max_epochs=epochs,
        optimizer=torch.optim.SGD,
        lr=0.01,
        train_split=None,
        verbose=0,
        random_state=0,
        **params,
    )


def child_memory(args):
    """One configuration in this (fresh) process; print a JSON line."""
    import pandas as pd
    import torch  # noqa: F401  (imported before the baseline RSS)

    import sklearn_medprep  # noqa: F401

    size = SIZES[args.size]
    table = pd.read_csv(args.table, index_col=0).iloc[: args.n]
    net = _net(size, args.queue, epochs=1)
    before = _rss_kib("VmRSS")
    net.fit(table, table["y"])
    peak = _rss_kib("VmHWM")
    print(json.dumps({"before_mib": before / 1024, "peak_mib": peak / 1024}))


def memory(table_file, size_name):
    size = SIZES[size_name]
    cohorts, queues = size["cohorts"], size["queues"]
    volume_mib = np.prod(size["shape"]) * 4 / 2**20
    patch_mib = size["patch"] ** 3 * 4 / 2**20
    configs = [(cohorts[0], queues[0]), (cohorts[1], queues[0]),
               (cohorts[1], queues[1])]
    print(
        f"\n1. Peak RSS of one training epoch (volumes {size['shape']}, "
        f"{volume_mib:.1f} MiB each; patches {size['patch']}^3, "
        f"{patch_mib:.2f} MiB each), fresh process per configuration"
    )
    print(
        f"{'subjects':>8} {'queue':>6} {'cohort as array':>16} "
        f"{'queue of patches':>17} {'peak RSS':>10} {'peak - before fit':>18}"
    )
    results = {}
    for n, queue in configs:
        out = subprocess.run(
            [sys.executable, __file__, "--child-memory", "--table", table_file,
             "--n", str(n), "--queue", str(queue), "--size", size_name],
            capture_output=True, text=True, check=True,
        )
        line = json.loads(out.stdout.strip().splitlines()[-1])
        increase = line["peak_mib"] - line["before_mib"]
        results[n, queue] = increase
        print(
            f"{n:>8} {queue:>6} {n * volume_mib:>12.1f} MiB "
            f"{queue * patch_mib:>13.1f} MiB {line['peak_mib']:>6.0f} MiB "
            f"{increase:>14.1f} MiB"
        )
    small, large = (cohorts[0], queues[0]), (cohorts[1], queues[0])
    print(
        f"cohort x{cohorts[1] / cohorts[0]:.0f} at queue {queues[0]}: peak increase "
        f"ratio {results[large] / results[small]:.2f} "
        f"(cohort-as-array ratio {cohorts[1] / cohorts[0]:.2f})"
    )
    longer = (cohorts[1], queues[1])
    print(
        f"queue x{queues[1] / queues[0]:.0f} at {cohorts[1]} subjects: peak "
        f"increase ratio {results[longer] / results[large]:.2f}"
    )


def _seeded_module():
    import torch

    torch.manual_seed(0)  # the same initial weights on both sides
    return _module()


def plain_torchio(table, size, epochs):
    """What a TorchIO user writes: Queue + SubjectsLoader + a training loop.

    Returns the number of batches and the (wall, CPU) time of each epoch.
    """
    import torch
    import torchio as tio

    model = _seeded_module()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    criterion = torch.nn.CrossEntropyLoss()
    subjects = [
        tio.Subject(image=tio.ScalarImage(path), target=int(label))
        for path, label in zip(table["image"], table["y"])
    ]
    queue = tio.Queue(
        tio.SubjectsDataset(subjects),
        max_length=size["queues"][0],
        samples_per_volume=size["spv"],
        sampler=tio.UniformSampler(size["patch"]),
        num_workers=0,
        shuffle_subjects=True,
        shuffle_patches=True,
        verbose=False,
    )
    loader = tio.SubjectsLoader(queue, batch_size=size["batch"], num_workers=0)
    n_batches = 0
    durations = []
    model.train()
    for _ in range(epochs):
        start = time.perf_counter(), time.process_time()
        for batch in loader:
            X, y = batch["image"][tio.DATA].float(), batch["target"]
            optimizer.zero_grad()
            loss = criterion(model(X), y)
            loss.backward()
            optimizer.step()
            n_batches += 1
        durations.append((time.perf_counter() - start[0],
                          time.process_time() - start[1]))
    return n_batches, durations


def _ours(table, size, epochs):
    """``PatchNeuralNetClassifier.fit``; batches, each epoch's (wall, CPU) time."""
    from skorch.callbacks import Callback

    class EpochClock(Callback):
        # the same span as the plain loop's epoch timer: the batches, no more
        def on_epoch_begin(self, net, **kwargs):
            self.start = time.perf_counter(), time.process_time()

        def on_epoch_end(self, net, **kwargs):
            net.history.record("wall", time.perf_counter() - self.start[0])
            net.history.record("cpu", time.process_time() - self.start[1])

    net = _net(size, size["queues"][0], epochs, module=_seeded_module(),
               callbacks=[("clock", EpochClock())])
    net.fit(table, table["y"])
    history = net.history
    return sum(history[:, "train_batch_count"]), list(
        zip(history[:, "wall"], history[:, "cpu"])
    )


def overhead(table, size, repeat, threads):
    import torch

    torch.set_num_threads(threads)
    epochs = size["epochs"]
    n = len(table)
    print(
        f"\n2. Time per training batch, {n} subjects (NIfTI files) x "
        f"{size['spv']} patches x {epochs} epochs, uniform sampler, patch "
        f"{size['patch']}^3, batch {size['batch']}, queue {size['queues'][0]}, "
        f"SGD, the same module and initial weights on both sides"
    )
    print(
        f"method: torch on {torch.get_num_threads()} thread(s), queue and loader "
        f"in the main process; {repeat} rounds alternating which side goes "
        "first; per round, ms per batch = time of the epochs' batch loops "
        "(wall, and CPU time of this process) / batches; epoch 1 reads and "
        "checks each file once (integrity against its header, non-finite "
        "voxels), later epochs read as TorchIO does"
    )
    rounds = []  # (plain, ours): per-epoch durations
    for i in range(repeat):
        sides = {}
        order = ("ours", "plain") if i % 2 else ("plain", "ours")
        for side in order:
            run = plain_torchio if side == "plain" else _ours
            sides[side] = run(table, size, epochs)
        batches, plain_batches = sides["ours"][0], sides["plain"][0]
        assert batches == plain_batches, (batches, plain_batches)
        rounds.append((sides["plain"][1], sides["ours"][1]))
    per_epoch = batches / epochs

    def summary(name, pick):
        count = per_epoch * len(pick(list(range(epochs))))
        medians = []
        for clock, what in ((0, "wall"), (1, "CPU ")):
            plain = np.array([sum(d[clock] for d in pick(p)) for p, _ in rounds])
            ours = np.array([sum(d[clock] for d in pick(o)) for _, o in rounds])
            ratios = ours / plain
            medians.append(np.median(ratios))
            print(
                f"{name:<12} {what} plain {np.median(plain) / count * 1e3:7.2f} "
                f"ms/batch, ours {np.median(ours) / count * 1e3:7.2f} ms/batch; "
                f"ours / plain median {medians[-1]:.3f} (rounds "
                f"{ratios.min():.3f}-{ratios.max():.3f})"
            )
        return medians

    summary("all epochs", lambda d: d)
    if epochs > 1:
        summary("epoch 1", lambda d: d[:1])
        steady = summary(f"epochs 2-{epochs}", lambda d: d[1:])
    else:
        steady = summary("epoch 1", lambda d: d)
    print(f"overhead ratio ours / plain: {steady[0]:.3f} wall, {steady[1]:.3f} CPU "
          "(goal <= 1.05; epochs after the first, median of rounds)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads in the timing part (default 1)")
    parser.add_argument("--child-memory", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--table", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--queue", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--size", default="full", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_memory:
        child_memory(args)
        return
    size_name = "quick" if args.quick else "full"
    size = SIZES[size_name]
    from sklearn_medprep.datasets import make_texture_cohort

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        table = make_texture_cohort(
            max(size["cohorts"]), shape=size["shape"], path=folder, random_state=0
        )
        table_file = os.path.join(folder, "table.csv")
        table.to_csv(table_file)
        print(
            f"cohort: {len(table)} NIfTI volumes of {size['shape']} written in "
            f"{time.perf_counter() - start:.1f} s"
        )
        memory(table_file, size_name)
        overhead(table.iloc[: size["cohorts"][0]], size, args.repeat, args.threads)


if __name__ == "__main__":
    main()
