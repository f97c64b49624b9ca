"""How a search should use a CPU that other jobs may share: the options side by side, quiet and busy.

A cut-down quickstart (4 candidates trained, 2 epochs each, no reference network) is searched once
per option, on a quiet machine and then with one competing busy loop holding a core, all in one run
so that both conditions meet the same machine. Options:
  one thread          --workers 1 --threads 1 (the default for train, evaluate and one worker)
  all cores           --workers 1 --threads N (the old default)
  a worker per core   --workers N --threads 1 (trials in parallel; the default for search)
  load at start       --workers 1 --threads (cores idle over one second at start)
It prints each option's wall time (seconds; a run past --limit is stopped and shown as ">LIMIT")
and its ratio to the best option of that condition.

    python bench/search_threads.py [--limit 240]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "search_spaces" / "quickstart.yaml"


def busy_loop() -> None:
    while True:
        pass


def idle_cores(seconds: float = 1.0) -> int:
    """Cores left idle over `seconds`, from /proc/stat (the load average lags by a minute)."""

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, total

    idle0, total0 = sample()
    time.sleep(seconds)
    idle1, total1 = sample()
    cores = len(os.sched_getaffinity(0))
    return max(1, round(cores * (idle1 - idle0) / max(1, total1 - total0)))


def cut_down(folder: Path) -> Path:
    raw = yaml.safe_load(QUICKSTART.read_text())
    raw["train"] = {**raw["train"], "epochs": 2}
    raw["search"] = {key: value for key, value in raw["search"].items() if key != "reference"} | {"trials": 4}
    path = folder / "quickstart_cut.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def search_seconds(spec: Path, out: Path, workers: int, threads: int, limit: float) -> float:
    command = [sys.executable, "-m", "sandbox", "search", str(spec), "--out", str(out), "--device", "cpu"]
    command += ["--workers", str(workers), "--threads", str(threads)]
    began = time.perf_counter()
    try:
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=limit)
    except subprocess.TimeoutExpired:
        return float("inf")
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=float, default=240, help="seconds before a run is stopped")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    options = {
        "one thread": lambda: (1, 1),
        "all cores": lambda: (1, cores),
        "a worker per core": lambda: (cores, 1),
        "load at start": lambda: (1, idle_cores()),
    }
    rows: dict[str, dict[str, float]] = {name: {} for name in options}
    with tempfile.TemporaryDirectory() as tmp:
        spec = cut_down(Path(tmp))
        for condition in ("quiet", "busy"):
            hog = multiprocessing.Process(target=busy_loop, daemon=True) if condition == "busy" else None
            if hog is not None:
                hog.start()
                time.sleep(1)
            try:
                for name, choose in options.items():
                    workers, threads = choose()
                    out = Path(tmp) / f"{condition}-{name.replace(' ', '-')}"
                    rows[name][condition] = search_seconds(spec, out, workers, threads, args.limit)
                    print(f"  {condition:<5} {name:<18} workers {workers} threads {threads}: "
                          f"{rows[name][condition]:.0f} s", flush=True)  # fmt: skip
            finally:
                if hog is not None:
                    hog.terminate()
    print(f"\ncut-down quickstart (4 candidates x 2 epochs), {cores} cores; seconds (ratio to the best)")
    print(f"{'option':<20} {'quiet':>16} {'busy (1 core held)':>20}")
    best = {c: min(r[c] for r in rows.values()) for c in ("quiet", "busy")}
    for name, row in rows.items():
        cells = [
            f">{args.limit:.0f}" if row[c] == float("inf") else f"{row[c]:.0f} ({row[c] / best[c]:.1f}x)"
            for c in ("quiet", "busy")
        ]
        print(f"{name:<20} {cells[0]:>16} {cells[1]:>20}")


if __name__ == "__main__":
    main()
