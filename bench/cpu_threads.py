"""CPU threads on a busy machine: `sandbox train` with the default thread count against chosen ones,
while one competing busy loop holds a core (as another job on a shared CI machine or laptop does).

Each setting trains `fmnist_baseline.yaml` for 2 epochs on a tenth of the bundled sample in its
own process (the thread count is per process); images/s is the trainer's own figure, which leaves
out the first epoch's warm-up. Settings alternate, `--repeat` rounds, so a change in the machine's
load falls on all of them; the best and worst round of each are printed.

    python bench/cpu_threads.py [--repeat 2] [--threads 1 2] [--quiet]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

BASELINE = Path(__file__).resolve().parents[1] / "search_spaces" / "fmnist_baseline.yaml"


def busy_loop() -> None:
    while True:
        pass


def images_per_second(spec: Path, out: Path, threads: int | None) -> float:
    command = [sys.executable, "-m", "sandbox", "train", str(spec), "--device", "cpu", "--out", str(out)]
    command += ["--threads", str(threads)] if threads else []
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return float(json.loads((out / "metrics.json").read_text())["train_images_per_second"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="chosen counts to compare")
    parser.add_argument("--quiet", action="store_true", help="no competing busy loop: the quiet machine's figures")
    args = parser.parse_args()
    raw = yaml.safe_load(BASELINE.read_text())
    raw["train"] = {**raw.get("train", {}), "epochs": 2}
    raw["data"] = {**raw.get("data", {}), "val_fraction": 0.9}
    settings: list[int | None] = [None, *args.threads]
    figures: dict[int | None, list[float]] = {setting: [] for setting in settings}
    hog = None if args.quiet else multiprocessing.Process(target=busy_loop, daemon=True)
    with tempfile.TemporaryDirectory() as folder:
        spec = Path(folder) / "baseline.yaml"
        spec.write_text(yaml.safe_dump(raw, sort_keys=False))
        if hog is not None:
            hog.start()
        try:
            for round_ in range(args.repeat):
                for setting in settings:
                    out = Path(folder) / f"run-{setting}-{round_}"
                    figures[setting].append(images_per_second(spec, out, setting))
        finally:
            if hog is not None:
                hog.terminate()
    load = "quiet machine" if args.quiet else "one competing busy loop"
    print(f"fmnist_baseline.yaml, 2 epochs on 570 images, {load}; images/s over {args.repeat} rounds")
    print(f"{'threads':<22} {'best':>8} {'worst':>8}")
    for setting, values in figures.items():
        name = "default (usable cores)" if setting is None else str(setting)
        print(f"{name:<22} {max(values):>8.0f} {min(values):>8.0f}")


if __name__ == "__main__":
    main()
