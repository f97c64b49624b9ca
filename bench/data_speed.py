"""Data speed: an image folder's first load against its cached load, and training images/s as the
input grows (28, 56, 96 pixels) on the same network, against the FLOP ratio.

(a) image folder: `--images` JPEGs (10 classes, photo-like sizes, some not square) written into a
    temporary directory, then `sandbox.train.data.load` twice in fresh processes: the first decodes
    every file (as `predict` converts an image) and writes the uint8 cache, the second reads the cache.
    Each time is the whole `load` call in a new interpreter, imports excluded.
(b) training: `fmnist_baseline.yaml` with `input.size` set to each size, on the first `--train`
    images of the bundled Fashion-MNIST sample resized once at load time; images/s of the epochs
    after the first (warm-up), against the forward FLOPs per image.

    python bench/data_speed.py --threads 1
    python bench/data_speed.py --threads 1 --only folder --images 5000 --size 64
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torchvision.datasets import FashionMNIST

from sandbox.model.flops import count
from sandbox.spec.load import load_spec, read_yaml
from sandbox.train.data import sample_root
from sandbox.train.loop import train_run

REPO = Path(__file__).resolve().parent.parent
SHAPES = ((160, 120), (120, 160), (128, 128), (200, 150))  # width x height, as photos come
LOAD = """
import json, time
from pathlib import Path
import torch
from sandbox.spec.recipe import DataConfig
from sandbox.train.data import load
torch.set_num_threads({threads})
began = time.perf_counter()
data = load(DataConfig("image-folder", Path({root!r})), "cpu", channels=3, size={size})
seconds = time.perf_counter() - began
print(json.dumps({{"seconds": seconds, "images": len(data.train) + len(data.val) + len(data.test)}}))
"""


def write_folder(root: Path, images: int, seed: int = 0) -> int:
    """`images` JPEGs in 10 class folders; returns their total bytes."""
    generator = torch.Generator().manual_seed(seed)
    total = 0
    for i in range(images):
        width, height = SHAPES[i % len(SHAPES)]
        folder = root / f"class{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        low = torch.randint(0, 256, (height // 8, width // 8, 3), generator=generator, dtype=torch.uint8)
        image = Image.fromarray(low.numpy()).resize((width, height), Image.Resampling.BICUBIC)  # smooth, like photos
        path = folder / f"{i:05d}.jpg"
        image.save(path, quality=90)
        total += path.stat().st_size
    return total


def folder_bench(images: int, size: int, threads: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "folder"
        began = time.perf_counter()
        nbytes = write_folder(root, images)
        print(f"image folder: {images:,} JPEGs, {nbytes / 1e6:.1f} MB, written in {time.perf_counter() - began:.1f} s")
        env = {**os.environ, "SANDBOX_CACHE": str(Path(tmp) / "cache"), "OMP_NUM_THREADS": str(threads)}
        code = LOAD.format(threads=threads, root=str(root), size=size)
        for label in ("first load (decode + cache)", "second load (cache)"):
            done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"  {label:<28} {result['seconds']:7.2f} s  ({result['images']:,} images at 3x{size}x{size})")
        cache = sum(p.stat().st_size for p in (Path(tmp) / "cache").rglob("*.pt"))
        print(f"  cache file: {cache / 1e6:.1f} MB")


def small_sample(train: int, test: int, into: Path) -> Path:
    """The first `train` and `test` images of the bundled sample, as IDX files under `into`."""
    from train_speed import write_idx  # bench/ is the script's directory, so on sys.path

    source = sample_root()
    raw = into / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for split, n, prefix in ((True, train, "train"), (False, test, "t10k")):
        dataset = FashionMNIST(source, train=split)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", dataset.data[:n])
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", dataset.targets[:n].to(torch.uint8))
    return into


def training_bench(sizes: list[int], train: int, epochs: int, batch: int) -> None:
    base = read_yaml(REPO / "search_spaces" / "fmnist_baseline.yaml")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = small_sample(train, batch, Path(tmp))
        for size in sizes:
            raw = {
                **base,
                "input": {"channels": 1, "size": size},
                "train": {**base.get("train", {}), "epochs": epochs, "batch_size": batch},
                "data": {"dataset": "fashion-mnist", "root": str(root), "val_fraction": 0.1},
            }
            spec = load_spec(raw)
            metrics = train_run(spec, device="cpu", progress=False)
            rows.append((size, count(spec).flops, metrics["train_images_per_second"]))
    precision = metrics["train_precision"]
    print(f"training fmnist_baseline.yaml, {train} images (batch {batch}), epochs after the first, CPU, {precision}:")
    print(f"  {'size':>4} {'MFLOPs':>8} {'FLOP ratio':>10} {'images/s':>9} {'slowdown':>9} {'GFLOP/s':>8}")
    flops0, speed0 = rows[0][1], rows[0][2]
    for size, flops, speed in rows:
        achieved = 3 * flops * speed / 1e9  # forward + backward
        ratio, slowdown = flops / flops0, speed0 / speed
        print(f"  {size:>4} {flops / 1e6:>8.1f} {ratio:>9.2f}x {speed:>9.1f} {slowdown:>8.2f}x {achieved:>8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", choices=("folder", "training"))
    parser.add_argument("--images", type=int, default=5000, help="image-folder size (default 5000)")
    parser.add_argument("--size", type=int, default=64, help="input size the folder is loaded at (default 64)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[28, 56, 96])
    parser.add_argument("--train", type=int, default=320, help="training images per size (default 320)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), load average {os.getloadavg()[0]:.1f}")
    if args.only != "training":
        folder_bench(args.images, args.size, args.threads)
    if args.only != "folder":
        training_bench(args.sizes, args.train, args.epochs, args.batch_size)


if __name__ == "__main__":
    main()
