"""How long counting parameters and FLOPs takes (meta device), for the specs that ship.

python bench/count_speed.py        # target: under 0.5 s for googlenet.yaml
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from sandbox.model.flops import count
from sandbox.spec.load import load_spec

SPECS = ("googlenet.yaml", "googlenet_2014.yaml", "fmnist_baseline.yaml")


def main() -> None:
    for name in SPECS:
        spec = load_spec(Path(__file__).resolve().parents[1] / "search_spaces" / name)
        count(spec)  # the first call imports and registers the plugins
        times = []
        for _ in range(5):
            start = time.perf_counter()
            counts = count(spec)
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        print(f"{name:<22} {counts.flops:>15,} FLOPs  {counts.params:>11,} params  median {median:.3f} s")


if __name__ == "__main__":
    main()
