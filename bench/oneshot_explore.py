"""Which subnets a trained supernet scores: random draws against TPE, at equal scoring budgets.

Loads the supernets one-shot searches left (`RUN_DIR/supernet.pt`, e.g. those of `oneshot_live.py`)
and, per supernet and exploration seed, runs `sandbox.search.oneshot.explore` with `random` and with
`tpe` for `--candidates` scored subnets in the quickstart's band, each scored in full (the search
screens first and scores only its finalists in full: `oneshot_screen.py`). It prints
the best supernet score each found and the mean of its top 3 (what the search retrains), paired by
supernet and seed, with the time a score takes. A higher supernet score is what TPE optimizes; whether
it means a better stand-alone network is the supernet's rank (`oneshot_rank.py`), not measured here.

    python bench/oneshot_explore.py runs/oneshot_live/seed0 runs/oneshot_live/seed1 --seeds 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import torch
import yaml
from oneshot_live import mean_interval

from sandbox.model.flops import count
from sandbox.search.oneshot.explore import explore
from sandbox.search.oneshot.score import Scorer
from sandbox.search.oneshot.supernet import Supernet
from sandbox.search.oneshot.train import Subnets, load_data
from sandbox.spec.one_shot import OneShotConfig
from sandbox.spec.search import search_config
from sandbox.train.device import set_cpu_threads

REPO = Path(__file__).resolve().parents[1]
SPACE = REPO / "search_spaces" / "quickstart.yaml"


def run(run_dir: Path, seeds: list[int], candidates: int) -> list[dict[str, Any]]:
    saved = torch.load(run_dir / "supernet.pt", map_location="cpu", weights_only=True)
    space = saved["identity"]["space"]
    net = Supernet(space, SPACE.parent)
    net.load_state_dict(saved["model"])
    data, recipe = load_data(net, "cpu")
    scorer = Scorer(net, data, OneShotConfig(), batch=recipe.batch_size, seed=0, channels_last=recipe.channels_last)
    config = search_config(yaml.safe_load(SPACE.read_text())["search"])
    subnets, seconds = Subnets(net), []

    def evaluate(params: Mapping[str, Any]) -> tuple[int, float | None]:
        subnet = subnets(params)
        flops = count(subnet.spec).flops
        if not config.in_band(flops):
            return flops, None
        began = time.perf_counter()
        value = scorer.score(subnet)
        seconds.append(time.perf_counter() - began)
        return flops, value

    rows = []
    for seed in seeds:
        for sampler in ("random", "tpe"):
            began = time.perf_counter()
            settings = OneShotConfig(candidates=candidates, sampler=sampler)
            found = explore(space, replace(config, seed=seed), settings, evaluate)
            top = sorted((c["screen"] for c in found), reverse=True)  # here the full score
            rows.append({"supernet": str(run_dir), "seed": seed, "sampler": sampler, "best": top[0],
                         "top3": statistics.fmean(top[:3]), "scored": len(found),
                         "seconds": time.perf_counter() - began})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    print(f"{run_dir}: {statistics.fmean(seconds):.2f} s a score ({len(seconds)} scores)")
    return rows


def paired(rows: list[dict[str, Any]], key: str) -> str:
    by = {(r["supernet"], r["seed"], r["sampler"]): r[key] for r in rows}
    gains = [100 * (by[s, k, "tpe"] - by[s, k, "random"]) for s, k, sampler in by if sampler == "random"]
    return f"{key}: tpe - random, points {mean_interval(gains)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="one-shot search run directories (their supernet.pt)")
    parser.add_argument("--seeds", type=int, default=3, help="exploration seeds per supernet")
    parser.add_argument("--candidates", type=int, default=64)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    set_cpu_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = [row for run_dir in args.runs for row in run(run_dir, list(range(args.seeds)), args.candidates)]
    for key in ("best", "top3"):
        print(paired(rows, key))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"candidates": args.candidates, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
