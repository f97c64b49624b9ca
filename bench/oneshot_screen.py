"""The one-shot search's subnet scoring: how fast it screens, and what the screen costs in rank.

Loads a trained supernet (`RUN_DIR/supernet.pt`, as a one-shot search of the quickstart space leaves
it, e.g. `oneshot_live.py`'s) and, one thread, fp32:

1. **The stage as the search runs it**: `--candidates` random subnets in the quickstart's band
   screened (batch norms on `screen_calibration` batches, accuracy on `screen_images` validation
   images), the `finalists` best scored in full, with the wall time of each part; draws and their
   counts included.
2. **Fidelity**: for `--fidelity` of those subnets, the full score (every calibration batch, the whole
   validation split) beside the screen: Kendall τ between them, and where the full score's best 3
   fall in the screen's order (the screen keeps them when all are within its `finalists` best).
3. **Rank against the table**: screen and full score of every candidate of the trained table
   (`quickstart_table.jsonl`), with Kendall τ against its stand-alone validation accuracy (all, and in
   the budget band), as `oneshot_rank.py` reports for the full score.

    python bench/oneshot_screen.py runs/oneshot_live/seed0 --json runs/screen_seed0.json
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from oneshot_rank import BAND, BUDGET, TABLE, candidates
from scipy import stats

from sandbox.model.flops import PartCounts
from sandbox.search.oneshot.explore import explore
from sandbox.search.oneshot.score import Scorer
from sandbox.search.oneshot.strategy import finals
from sandbox.search.oneshot.supernet import Supernet
from sandbox.search.oneshot.train import Subnets, load_data
from sandbox.spec.one_shot import OneShotConfig
from sandbox.spec.search import search_config

REPO = Path(__file__).resolve().parents[1]
SPACE = REPO / "search_spaces" / "quickstart.yaml"


def tau(a: list[float], b: list[float]) -> float:
    return float(stats.kendalltau(a, b).statistic)


def measure(run_dir: Path, settings: OneShotConfig, fidelity: int, seed: int, table: bool) -> dict[str, Any]:
    saved = torch.load(run_dir / "supernet.pt", map_location="cpu", weights_only=True)
    space = saved["identity"]["space"]
    net = Supernet(space, SPACE.parent)
    net.load_state_dict(saved["model"])
    data, recipe = load_data(net, "cpu")
    scorer = Scorer(net, data, settings, batch=recipe.batch_size, seed=seed, channels_last=recipe.channels_last)
    config = search_config({**yaml.safe_load(SPACE.read_text())["search"], "seed": seed})
    subnets, counter, draws = Subnets(net), PartCounts(), [0]

    def screen(params: Any) -> tuple[int, float | None]:
        draws[0] += 1
        subnet = subnets(params)
        flops = counter(subnet.spec).flops
        return (flops, scorer.screen(subnet)) if config.in_band(flops) else (flops, None)

    began = time.perf_counter()
    screened = explore(space, config, settings, screen)
    screen_seconds = time.perf_counter() - began
    ranked = finals(screened, scorer, subnets, settings.finalists)
    final_seconds = time.perf_counter() - began - screen_seconds
    print(f"{run_dir}: {len(screened)} screened in {screen_seconds:.0f} s ({draws[0]} draws), "
          f"{settings.finalists} scored in full in {final_seconds:.0f} s", flush=True)  # fmt: skip

    row: dict[str, Any] = {"supernet": str(run_dir), "settings": settings.__dict__, "screened": len(screened),
                           "draws": draws[0], "screen_seconds": screen_seconds, "final_seconds": final_seconds,
                           "pick": ranked[0]}  # fmt: skip
    if fidelity:
        row |= agreement(scorer, subnets, random.Random(seed).sample(screened, min(fidelity, len(screened))))
    if table:
        row |= against_table(scorer, subnets)
    return row


def agreement(scorer: Scorer, subnets: Subnets, sample: list[dict[str, Any]]) -> dict[str, Any]:
    """Kendall τ between the screen and the full score, and the full score's best 3's places in the screen."""
    full = [scorer.score(subnets(c["params"])) for c in sample]
    screens = [c["screen"] for c in sample]
    screen_order = sorted(range(len(sample)), key=lambda i: -screens[i])
    best = sorted(range(len(sample)), key=lambda i: -full[i])[:3]
    kept_within = [screen_order.index(i) + 1 for i in best]  # the full best 3's places in the screen
    return {
        "fidelity_n": len(sample),
        "tau_screen_full": tau(screens, full),
        "full_best3_places_in_screen": kept_within,
    }


def against_table(scorer: Scorer, subnets: Subnets) -> dict[str, Any]:
    """Kendall τ of the screen and of the full score against the table's stand-alone validation accuracy."""
    table = candidates(TABLE)
    for candidate in table:
        subnet = subnets(candidate["params"])
        candidate["screen"], candidate["score"] = scorer.screen(subnet), scorer.score(subnet)
    band = [c for c in table if c["flops"] >= BAND * BUDGET]
    rank = {
        f"{group_name}_{score}": tau([c[score] for c in group], [c["final_val"] for c in group])
        for group_name, group in (("all", table), ("band", band))
        for score in ("screen", "score")
    }
    return {
        "table_tau": rank,
        "table_n": {"all": len(table), "band": len(band)},
        "table": [{k: c[k] for k in ("index", "flops", "final_val", "screen", "score")} for c in table],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", type=Path, nargs="+", help="run directories holding supernet.pt")
    parser.add_argument("--candidates", type=int, default=OneShotConfig().candidates)
    parser.add_argument("--fidelity", type=int, default=150, help="screened subnets also scored in full (0: none)")
    parser.add_argument("--no-table", action="store_true", help="skip scoring the trained table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = OneShotConfig(candidates=args.candidates)
    rows = []
    for run_dir in args.run_dirs:
        row = measure(run_dir, settings, args.fidelity, args.seed, table=not args.no_table)
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "table"}), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
