"""`sandbox predict RUN_DIR IMAGE...`: top-3 classes of image files, with probabilities.

How an image becomes the network's input, whatever its size or colour (`sandbox.train.images`):
  1. transparency is flattened onto white; the image becomes grayscale for a 1-channel network
     (luminance), RGB for a 3-channel one;
  2. it is padded to a square with its border colour (so it is not stretched), then resized to the
     network's input size (bilinear, antialiased);
  3. pixel values are scaled to [0, 1]: 8-bit ones by 255, 16-bit ones by 65535; float images must
     hold [0, 1] already;
  4. Fashion-MNIST and MNIST show light shapes on a black background, so for a 1-channel network
     trained on either a picture with a light background (the mean of its border pixels above 0.5)
     is inverted (`--invert auto`, the default; other datasets are never inverted by `auto`;
     `--invert always` / `never` decide for every image).

The class names are those the run trained with (its metrics.json), else the dataset's where they
are known without its files (the MNIST family), else "class N".

An image that cannot be read is one line naming it, and the others are still classified (exit 1).
So is one whose conversion would take more than 2 GiB, told from its header before it is decoded
(`sandbox.train.images.MAX_IMAGE_BYTES`: a 100000x1 strip padded to a square would take 10 GB), and
one over Pillow's decompression-bomb limit of about 89 million pixels.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sandbox.commands import add_plugin_option
from sandbox.errors import SandboxError

INVERT = ("auto", "always", "never")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="classify image files with a trained network",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", type=Path, help="a train or search run directory (or a spec with --weights)")
    parser.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="PNG or JPEG files")
    parser.add_argument("--top", type=int, default=3, help="how many classes to print per image (default 3)")
    parser.add_argument("--invert", choices=INVERT, default="auto", help="invert gray levels (default: auto)")
    parser.add_argument("--weights", type=Path, help="weights (.safetensors or .pt state dict) instead of the run's")
    add_plugin_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from sandbox.export.source import resolve
    from sandbox.spec.datasets import DATASETS
    from sandbox.train.images import load_image

    exportable = resolve(args.source, weights=args.weights, plugin_files=args.plugin)
    if exportable.weights_origin is None:
        raise SandboxError(f"{args.source} has no trained weights to predict with: pass --weights FILE")
    spec, model = exportable.spec, exportable.model
    if spec.channels not in (1, 3):
        raise SandboxError(f"predict reads gray or RGB images; this network takes {spec.channels} channels")
    names = exportable.classes or tuple(f"class {i}" for i in range(spec.classes))
    invert = "never" if args.invert == "auto" and not DATASETS[spec.data.dataset].light_on_black else args.invert
    failed = 0
    for path in args.images:
        try:
            image, inverted = load_image(path, spec.channels, spec.size, invert)
        except SandboxError as err:
            print(f"error: {err}", file=sys.stderr)
            failed += 1
            continue
        with torch.inference_mode():
            probabilities = model(image.unsqueeze(0)).softmax(dim=1)[0]
        values, indices = probabilities.topk(min(args.top, spec.classes))
        best = ", ".join(f"{names[i]} {p:.3f}" for p, i in zip(values.tolist(), indices.tolist(), strict=True))
        print(f"{path}: {best}" + ("  (inverted)" if inverted else ""))
    return 1 if failed else 0
