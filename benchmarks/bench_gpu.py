"""CPU against GPU: TorchIO transforms on tensors, patch-net training, inference.

Runs everywhere: without a CUDA device it prints ``no CUDA device: CPU figures
only`` and the CPU figures (this is how CI runs it); with one
(``torch.cuda.is_available()``), each figure is measured on the CPU and on the
GPU in the same run, and the ratio GPU / CPU is printed beside them.

1. TorchIO transforms applied to a subject whose tensor lives on the device
   (``tio.ScalarImage(tensor=t.to(device))``): ms per subject, the device the
   output lives on, and for the deterministic transforms the largest
   difference between the CPU and GPU outputs. A transform that fails on
   CUDA tensors is reported with its error, not hidden.
2. Patch-net training: ``PatchNeuralNetSegmenter.fit(table)`` with
   ``device="cpu"`` and ``device="cuda"`` on the same NIfTI files, patch
   sampler, module, optimizer, batch size and epochs; ms per batch (wall time
   of ``fit`` / batches; subjects are read and patches sampled on the CPU by
   the queue on both sides, only the module runs on the device).
3. Sliding-window inference: ``predict_proba`` of the same nets (grid patches,
   ``GridAggregator``), s per volume; the GPU net is also given the CPU net's
   weights and the largest difference between their probability maps printed.

``--repeat`` rounds (default 3) alternate which device goes first; the median
over rounds is printed. CUDA work is synchronized before each clock stops, and
one warm-up round (CUDA context, cuDNN autotuning) runs before the timed ones.

    python benchmarks/bench_gpu.py --quick
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

from sklearn_medprep import PatchNeuralNetSegmenter  # noqa: E402
from sklearn_medprep.datasets import make_texture_cohort  # noqa: E402

SIZES = {
    # volume shape, subjects, patch, samples per volume, batch, epochs, width
    "quick": dict(shape=(24, 26, 22), n=3, patch=12, spv=2, batch=4, epochs=1,
                  width=4, transform_shape=(32, 32, 32)),
    "full": dict(shape=(128, 128, 128), n=8, patch=64, spv=8, batch=8,
                 epochs=2, width=16, transform_shape=(192, 192, 192)),
}

TRANSFORMS = {
    # name: (factory, deterministic)
    "ZNormalization": (lambda: tio.ZNormalization(), True),
    "RescaleIntensity": (lambda: tio.RescaleIntensity((0, 1)), True),
    "Flip": (lambda: tio.Flip(axes=(0, 2)), True),
    "RandomNoise": (lambda: tio.RandomNoise(std=0.1), False),
    "RandomGamma": (lambda: tio.RandomGamma(), False),
    "RandomBiasField": (lambda: tio.RandomBiasField(), False),
    "RandomAffine": (lambda: tio.RandomAffine(), False),
}


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def _overlap(size):
    return 2 * (size["patch"] // 8)  # even, as the crop and average modes need


def _module(width):
    from torch import nn

    return nn.Sequential(
        nn.Conv3d(1, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv3d(width, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv3d(width, 2, 1),
    )


def _net(size, device):
    torch.manual_seed(0)  # the same initial weights on every device
    return PatchNeuralNetSegmenter(
        _module(size["width"]),
        label="mask",
        patch_size=size["patch"],
        samples_per_volume=size["spv"],
        queue_length=4 * size["spv"],
        batch_size=size["batch"],
        max_epochs=size["epochs"],
        optimizer=torch.optim.SGD,
        lr=0.01,
        train_split=None,
        verbose=0,
        random_state=0,
        device=device,
    )


def _rounds(sides, repeat, run):
    """Median over ``repeat`` rounds (alternating order) of ``run(side)``."""
    order = list(sides)
    for side in order:  # warm-up, not timed
        run(side)
    times = {side: [] for side in order}
    for i in range(repeat):
        for side in order if i % 2 == 0 else order[::-1]:
            times[side].append(run(side))
    return {side: float(np.median(values)) for side, values in times.items()}


def _line(label, unit, medians, scale=1e3):
    cpu = medians["cpu"] * scale
    text = f"{label:<34} cpu {cpu:9.2f} {unit}"
    if "cuda" in medians:
        gpu = medians["cuda"] * scale
        text += f", cuda {gpu:9.2f} {unit}, cuda / cpu {gpu / cpu:.3f}"
    print(text)


def transforms(size, sides, repeat):
    shape = size["transform_shape"]
    print(f"\n1. TorchIO transforms on a {shape} float32 tensor on the device "
          "(ms per subject, median of rounds)")
    volume = torch.randn((1, *shape), generator=torch.Generator().manual_seed(0))
    affine = np.diag([1.0, 1.2, 0.9, 1.0])
    for name, (factory, deterministic) in TRANSFORMS.items():
        outputs, errors = {}, {}

        def run(side, factory=factory, outputs=outputs, errors=errors):
            device = sides[side]
            if side in errors:
                return float("nan")
            try:
                subject = tio.Subject(image=tio.ScalarImage(
                    tensor=volume.to(device), affine=affine))
                transform = factory()
                torch.manual_seed(0)
                _sync(device)
                start = time.perf_counter()
                out = transform(subject)["image"].data
                _sync(device)
            except Exception as exc:  # noqa: BLE001 - reported, not hidden
                errors[side] = f"{type(exc).__name__}: {exc}".splitlines()[0]
                return float("nan")
            elapsed = time.perf_counter() - start
            outputs[side] = out
            return elapsed

        medians = _rounds(sides, repeat, run)
        if "cpu" in errors:
            print(f"TorchIO {name:<26} fails on CPU tensors: {errors['cpu']}")
            continue
        if "cuda" in errors:
            print(f"TorchIO {name:<26} cpu {medians['cpu'] * 1e3:9.2f} ms; "
                  f"fails on CUDA tensors: {errors['cuda'][:120]}")
            continue
        _line(f"TorchIO {name}", "ms", medians)
        if "cuda" in outputs:
            out = outputs["cuda"]
            note = f"   output on {out.device.type}"
            if deterministic:
                diff = (out.cpu().float() - outputs["cpu"].float()).abs().max()
                note += f", max |cuda - cpu| {float(diff):.2e}"
            print(note)


def nets(table, size, sides, repeat):
    print(
        f"\n2. PatchNeuralNetSegmenter.fit: {len(table)} subjects (NIfTI files) "
        f"of {size['shape']}, patches {size['patch']}^3 x {size['spv']} per "
        f"volume, batch {size['batch']}, {size['epochs']} epoch(s), SGD, "
        f"module width {size['width']}; torch CPU threads "
        f"{torch.get_num_threads()}"
    )
    fitted = {}

    def train(side):
        device = sides[side]
        net = _net(size, device)
        _sync(device)
        start = time.perf_counter()
        net.fit(table)
        _sync(device)
        elapsed = time.perf_counter() - start
        fitted[side] = net
        return elapsed / sum(net.history[:, "train_batch_count"])

    _line("patch training (fit)", "ms/batch", _rounds(sides, repeat, train))

    print(f"\n3. Sliding-window inference: predict_proba, grid of "
          f"{size['patch']}^3 patches, overlap {_overlap(size)}, "
          "average mode")
    probabilities = {}

    def infer(side):
        device = sides[side]
        net = fitted[side]
        net.set_params(patch_overlap=_overlap(size))
        _sync(device)
        start = time.perf_counter()
        out = net.predict_proba(table)
        _sync(device)
        elapsed = time.perf_counter() - start
        probabilities[side] = out
        return elapsed / len(table)

    _line("sliding-window inference", "s/volume", _rounds(sides, repeat, infer),
          scale=1)
    if "cuda" in fitted:
        # the same weights on both devices: outputs differ by rounding only
        fitted["cuda"].module_.load_state_dict(fitted["cpu"].module_.state_dict())
        infer("cuda")
        diff = max(
            float(np.abs(a.data.numpy() - b.data.numpy()).max())
            for a, b in zip(probabilities["cuda"]["mask_proba"],
                            probabilities["cpu"]["mask_proba"])
        )
        print(f"same weights, max |cuda - cpu| probability {diff:.2e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--dry-gpu", action="store_true",
        help="run the two-device code path with the CPU standing in for CUDA "
             "(tests the script where no GPU is; its figures mean nothing)")
    args = parser.parse_args()
    size = SIZES["quick" if args.quick else "full"]
    if torch.cuda.is_available():
        sides = {"cpu": "cpu", "cuda": "cuda"}
        print(f"CUDA device: {torch.cuda.get_device_name(0)}; torch "
              f"{torch.__version__}, CUDA {torch.version.cuda}")
    elif args.dry_gpu:
        sides = {"cpu": "cpu", "cuda": "cpu"}
        print("dry run: the CPU stands in for CUDA (figures mean nothing)")
    else:
        sides = {"cpu": "cpu"}
        print("no CUDA device: CPU figures only")
    print(f"method: median of {args.repeat} rounds alternating the device that "
          "goes first, after one warm-up round; CUDA synchronized before each "
          "clock stops")
    transforms(size, sides, args.repeat)
    with tempfile.TemporaryDirectory() as folder:
        table = make_texture_cohort(size["n"], shape=size["shape"], path=folder,
                                    random_state=0)
        nets(table, size, sides, args.repeat)


if __name__ == "__main__":
    main()
