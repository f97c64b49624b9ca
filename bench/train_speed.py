"""Training speed: the loop a tutorial writes against the sandbox trainer, on the same network.

(a) tutorial: a DataLoader over torchvision's FashionMNIST with per-sample ToTensor, two workers,
    fp32, NCHW, torch.optim.SGD; (b) the sandbox: `sandbox.train.loop.train_run` (whole dataset on the
    device, batches as slices, on-device augmentation, channels_last, bf16 where it pays).
Both train the spec's network with the same batch size, learning rate and number of epochs; the
figures are those of the last epoch (warm: compilation and first-touch costs are in the first).
Achieved GFLOP/s counts 3x the forward FLOPs per training image (forward + backward), against
the device's peak measured with a large matrix product.

    python bench/train_speed.py                                   # CPU or GPU, bundled sample
    python bench/train_speed.py --repeat-to 60000 --batch-size 1024 --compile max-autotune-no-cudagraphs
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import FashionMNIST

from sandbox.model.builder import build
from sandbox.model.flops import count
from sandbox.spec.load import Spec, load_spec, validate
from sandbox.train.data import sample_root
from sandbox.train.device import resolve_device
from sandbox.train.loop import train_run

REPO = Path(__file__).resolve().parent.parent


def peak_gflops(device: torch.device, dtype: torch.dtype) -> float:
    """The device's matrix-product rate: the best of a few large products, in GFLOP/s."""
    n = 8192 if device.type == "cuda" else 2048
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    best = math.inf
    for _ in range(5):
        synchronize(device)
        began = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - began)
    return 2 * n**3 / best / 1e9


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def write_idx(path: Path, data: torch.Tensor) -> None:
    header = struct.pack(">HBB", 0, 0x08, data.dim()) + struct.pack(f">{data.dim()}I", *data.shape)
    path.write_bytes(header + data.contiguous().numpy().tobytes())


def repeated_root(source: Path, images: int, into: Path) -> Path:
    """The sample's training split repeated to `images` images (speed does not depend on pixels)."""
    train = FashionMNIST(source, train=True)
    index = torch.arange(images) % len(train.targets)
    raw = into / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "train-images-idx3-ubyte", train.data[index])
    write_idx(raw / "train-labels-idx1-ubyte", train.targets[index].to(torch.uint8))
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        shutil.copy(source / "FashionMNIST" / "raw" / name, raw / name)
    return into


def tutorial(spec: Spec, root: Path, device: torch.device, epochs: int, workers: int) -> dict[str, float]:
    """The usual tutorial loop; returns the last epoch's images/s and the final test accuracy."""
    config = spec.train
    torch.manual_seed(config.seed)
    model = build(spec, device=device)
    to_tensor = transforms.ToTensor()
    train = FashionMNIST(root, train=True, transform=to_tensor)
    test = FashionMNIST(root, train=False, transform=to_tensor)
    loader = DataLoader(train, batch_size=config.batch_size, shuffle=True, num_workers=workers)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=True, weight_decay=config.weight_decay
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    rate = 0.0
    for _ in range(epochs):
        model.train()
        synchronize(device)
        began, seen = time.perf_counter(), 0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(y)
        synchronize(device)
        rate = seen / (time.perf_counter() - began)
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in DataLoader(test, batch_size=1000, num_workers=workers):
            correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
    return {"images_per_second": rate, "test_accuracy": correct / len(test)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spec", type=Path, default=REPO / "search_spaces" / "fmnist_baseline.yaml")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per loop; the last one is timed")
    parser.add_argument("--repeat-to", type=int, help="repeat the sample's training split to this many images")
    parser.add_argument("--batch-size", type=int, help="override train.batch_size (both loops)")
    parser.add_argument("--lr", type=float, help="override train.lr (both loops)")
    parser.add_argument("--compile", help="train.compile for the sandbox: true or a torch.compile mode")
    parser.add_argument("--precision", help="train.precision for the sandbox: auto, bf16 or fp32")
    parser.add_argument("--skip-tutorial", action="store_true", help="time the sandbox trainer only")
    parser.add_argument("--tutorial-workers", type=int, default=2, help="DataLoader workers of the tutorial loop")
    args = parser.parse_args()

    load = f"; load average {os.getloadavg()[0]:.1f} before the run" if hasattr(os, "getloadavg") else ""
    device = resolve_device(args.device)
    spec = load_spec(args.spec)
    overrides: dict[str, Any] = {"batch_size": args.batch_size, "lr": args.lr, "precision": args.precision}
    if args.compile is not None:
        overrides["compile"] = True if args.compile == "true" else args.compile
    raw = {
        **spec.raw,
        "train": {**(spec.raw.get("train") or {}), **{k: v for k, v in overrides.items() if v is not None}},
        "data": {"dataset": "fashion-mnist"},  # its root is the (repeated) sample, passed as data_dir below
    }
    spec = validate(raw, base=args.spec.resolve().parent, source=args.spec)
    flops = count(spec).flops
    config = spec.train

    with tempfile.TemporaryDirectory() as scratch:
        root = sample_root()
        if args.repeat_to:
            root = repeated_root(root, args.repeat_to, Path(scratch))
        rows = []
        if not args.skip_tutorial:
            result = tutorial(spec, root, device, args.epochs, args.tutorial_workers)
            loop = f"tutorial ({args.tutorial_workers} workers)"
            rows.append((loop, "fp32", "NCHW", "no", result["images_per_second"], result["test_accuracy"]))
        metrics = train_run(spec, epochs=args.epochs, device=str(device), data_dir=root, progress=False)
        layout = "NHWC" if config.channels_last else "NCHW"
        sandbox = metrics["history"][-1]["images_per_second"]
        compiled = "no" if config.compile is False else str(config.compile)
        rows.append(("sandbox", metrics["train_precision"], layout, compiled, sandbox, metrics["test_accuracy"]))
        train_images = metrics["dataset"]["train"]

    peaks = {p: peak_gflops(device, {"fp32": torch.float32, "bf16": torch.bfloat16}[p]) for p in {r[1] for r in rows}}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"device: {device} ({name}); torch {torch.__version__}{load}")
    print(
        f"network: {spec.name}, {flops / 1e6:.1f} MFLOPs forward per image; batch {config.batch_size}; "
        f"{args.epochs} epochs of {train_images:,} images (the tutorial also trains on the validation split)"
    )
    print("peak (matrix product): " + ", ".join(f"{p} {g:,.0f} GFLOP/s" for p, g in sorted(peaks.items())))
    print(
        f"{'loop':<22} {'precision':<9} {'layout':<6} {'compile':<28} {'images/s':>10} {'60k images':>10} "
        f"{'GFLOP/s':>8} {'of peak':>8} {'test acc':>8}"
    )
    for loop, precision, layout, compiled, rate, acc in rows:
        achieved = 3 * flops * rate / 1e9
        print(
            f"{loop:<22} {precision:<9} {layout:<6} {compiled:<28} {rate:>10,.0f} {60000 / rate:>9.2f}s "
            f"{achieved:>8,.1f} {achieved / peaks[precision]:>8.1%} {acc:>8.2%}"
        )
    if len(rows) == 2:
        print(f"sandbox / tutorial: {rows[1][4] / rows[0][4]:.2f}x")


if __name__ == "__main__":
    main()
