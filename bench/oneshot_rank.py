"""The supernet's rank against the table: Kendall τ and Spearman ρ of weight-sharing scores with
the stand-alone accuracies of the quickstart space's trained table.

It trains one supernet on the quickstart space (the bundled Fashion-MNIST sample, the space's
`train:` recipe with `--epochs`, one thread), scores every candidate of the table with inherited
weights (batch norms recalibrated on `--calibration` training batches, then accuracy on the
search's validation split), and prints τ and ρ against the table's stand-alone `final_val` (mean
over its seeds) and against val+test pooled, over all candidates and within the budget band.

    python bench/oneshot_rank.py --epochs 64 --json runs/oneshot_rank.json --checkpoint runs/supernet.pt

With `--checkpoint` the trained supernet is kept: run again with it to score differently (say,
`--calibration 32`) without training again.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from scipy import stats

from sandbox.search.oneshot.score import Scorer
from sandbox.search.oneshot.supernet import Supernet
from sandbox.search.oneshot.train import SAMPLINGS, Subnets, load_data, train_supernet
from sandbox.spec.load import read_yaml
from sandbox.spec.one_shot import OneShotConfig

REPO = Path(__file__).resolve().parents[1]
SPACE = REPO / "search_spaces" / "quickstart.yaml"
TABLE = REPO / "bench" / "results" / "quickstart_table.jsonl"
BUDGET, BAND = 16_000_000, 0.9  # the space's search.budget: {flops: 16M, floor: 0.9}


def candidates(table: Path) -> list[dict[str, Any]]:
    """One entry per candidate of the table: its params, FLOPs, and accuracies averaged over its seeds."""
    rows = [json.loads(line) for line in table.read_text().splitlines() if line.strip()]
    by_index: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_index.setdefault(row["index"], []).append(row)
    found = []
    for index, runs in sorted(by_index.items()):
        val = sum(r["final_val"] for r in runs) / len(runs)
        test = sum(r["final_test"] for r in runs) / len(runs)
        n_val, n_test = (int(runs[0]["correct"][k].split(":")[0]) for k in ("val", "test"))
        pooled = (val * n_val + test * n_test) / (n_val + n_test)
        found.append({"index": index, "params": runs[0]["params"], "flops": runs[0]["flops"], "seeds": len(runs),
                      "final_val": val, "final_test": test, "pooled": pooled,
                      "seed_vals": [r["final_val"] for r in sorted(runs, key=lambda r: r["seed"])]})  # fmt: skip
    return found


def correlations(scores: list[float], truth: list[float]) -> dict[str, float]:
    tau = stats.kendalltau(scores, truth)
    rho = stats.spearmanr(scores, truth)
    return {"n": len(scores), "tau": float(tau.statistic), "tau_p": float(tau.pvalue),
            "rho": float(rho.statistic), "rho_p": float(rho.pvalue)}  # fmt: skip


def summary(table: list[dict[str, Any]]) -> dict[str, Any]:
    """τ and ρ of the supernet's scores, and for scale of FLOPs, against the table's accuracies, over
    all candidates and in the band; and the table's own seed-to-seed τ (how far its truth is one)."""
    band = [c for c in table if c["flops"] >= BAND * BUDGET]
    figures: dict[str, Any] = {}
    for name, group in (("all", table), ("band", band)):
        for truth in ("final_val", "pooled"):
            wanted = [c[truth] for c in group]
            figures[f"{name}_{truth}"] = correlations([c["score"] for c in group], wanted)
            figures[f"{name}_{truth}_flops"] = correlations([c["flops"] for c in group], wanted)
    rerun = [c["seed_vals"] for c in table if len(c["seed_vals"]) > 1]
    figures["seed_to_seed_val"] = correlations([v[0] for v in rerun], [v[1] for v in rerun])
    return figures


def show(figures: dict[str, Any]) -> None:
    print(f"supernet: {figures['command']}: trained in {figures['train_seconds']:.0f} s; "
          f"scoring {figures['score_seconds_per_candidate']:.2f} s per candidate")  # fmt: skip
    for key in ("all_final_val", "all_pooled", "band_final_val", "band_pooled"):
        for what, f in (("supernet", figures[key]), ("FLOPs", figures[f"{key}_flops"])):
            print(f"  {key:<15} {what:<9} n={f['n']:<3} τ {f['tau']:+.3f} (p {f['tau_p']:.2f})  "
                  f"ρ {f['rho']:+.3f} (p {f['rho_p']:.2f})")  # fmt: skip
    f = figures["seed_to_seed_val"]
    print(f"  the table's seed 0 against seed 1 (final_val): n={f['n']} τ {f['tau']:+.3f}  ρ {f['rho']:+.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=16, help="supernet epochs (the recipe's schedule stretched)")
    parser.add_argument("--sampling", choices=SAMPLINGS, default="uniform")
    parser.add_argument("--calibration", type=int, default=8, help="training batches per batch-norm recalibration")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        help="the supernet after each epoch; resumed when there (rescoring needs no training)",
    )
    parser.add_argument(
        "--report", type=Path, help="print the figures of a --json file again (recomputed), train nothing"
    )
    args = parser.parse_args()
    if args.report:
        figures = json.loads(args.report.read_text())
        table = {c["index"]: c for c in candidates(args.table)}  # fills what older files lack
        scored = [table[c["index"]] | c for c in figures["candidates"]]
        show(figures | summary(scored))
        return
    torch.set_num_threads(1)

    torch.manual_seed(args.seed)
    net = Supernet(read_yaml(SPACE), SPACE.parent)
    data, recipe = load_data(net, "cpu")  # the search's split: the same data section, the fixed split seed
    config = recipe.with_overrides(epochs=args.epochs, seed=args.seed)
    trained = train_supernet(net, data, config, sampling=args.sampling, say=print, checkpoint=args.checkpoint)

    settings = OneShotConfig(calibration=args.calibration, screen_calibration=1)
    scorer = Scorer(net, data, settings, batch=config.batch_size, seed=args.seed, channels_last=config.channels_last)
    subnets = Subnets(net)
    table = candidates(args.table)
    began = time.perf_counter()
    for candidate in table:
        candidate["score"] = scorer.score(subnets(candidate["params"]))
    scoring = (time.perf_counter() - began) / len(table)

    figures: dict[str, Any] = {
        "command": f"python bench/oneshot_rank.py --epochs {args.epochs} --sampling {args.sampling} "
        f"--calibration {args.calibration} --seed {args.seed}",
        "train_seconds": trained["seconds"],
        "score_seconds_per_candidate": scoring,
        "threads": torch.get_num_threads(),
        "history": trained["history"],
        "candidates": table,
    }
    figures |= summary(table)
    show(figures)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
