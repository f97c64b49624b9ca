"""Which early signal predicts a candidate's final validation accuracy? Spearman ρ on trained candidates.

It draws `--candidates` distinct candidates of a space at random (under its FLOP budget), trains each
with the space's recipe to the end, and records for each:
  - the validation accuracy after every epoch k of that one long schedule (what a pruner sees);
  - the final validation accuracy of short *complete* schedules (`--short 2 4`: the same recipe with
    `train.epochs` 2 and 4, so the learning rate anneals to its end, as Hyperband assumes);
  - zero-cost scores at initialization on one training batch (synflow, NASWOT, gradient norm);
  - #params and FLOPs.
It prints Spearman's ρ of each with the final validation accuracy. Records are appended to `--out`
(one JSON line per candidate), so a killed run resumes, and `--shard I/N` lets N processes share
the work; `--report` only prints the table of what is there.

    python bench/rank_correlation.py --candidates 24 --shard 0/2 --out runs/rho.jsonl &
    python bench/rank_correlation.py --candidates 24 --shard 1/2 --out runs/rho.jsonl
    python bench/rank_correlation.py --out runs/rho.jsonl --report
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from proxies import PROXIES
from table import draws

from sandbox.model.builder import build
from sandbox.model.flops import count
from sandbox.spec.load import Spec, validate
from sandbox.train.data import load, to_float
from sandbox.train.device import set_cpu_threads
from sandbox.train.loop import train_run

REPO = Path(__file__).resolve().parents[1]


def candidates(space_path: Path, n: int, seed: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """`n` distinct, valid, within-budget candidates, always the same ones for the same seed (those of
    `table.py` for that seed)."""
    for index, (_, raw) in enumerate(draws(space_path, n, seed)):
        yield index, raw


def zero_cost(spec: Spec) -> dict[str, float]:
    """Every proxy's score for the network as initialized with the training seed, on one batch."""
    data = load(spec.data, "cpu")
    images = to_float(data.train.images[: spec.train.batch_size], channels_last=False)
    labels = data.train.labels[: spec.train.batch_size]
    scores = {}
    for name, proxy in PROXIES.items():
        torch.manual_seed(spec.train.seed)
        scores[name] = proxy(build(spec), images, labels)
    return scores


def measure(raw: dict[str, Any], base: Path, short: Sequence[int]) -> dict[str, Any]:
    spec = validate(raw, base=base)
    counts = count(spec)
    started = time.perf_counter()
    full = train_run(spec, device="cpu", progress=False)
    record: dict[str, Any] = {
        "spec": raw,
        "flops": counts.flops,
        "params": counts.params,
        "final_val": full["val_accuracy"],
        "final_test": full["test_accuracy"],
        "epoch_val": [row["val_accuracy"] for row in full["history"]],
        "short_val": {str(k): train_run(spec, epochs=k, device="cpu", progress=False)["val_accuracy"] for k in short},
        "proxies": zero_cost(spec),
    }
    record["seconds"] = time.perf_counter() - started
    return record


def ranks(values: Sequence[float]) -> list[float]:
    """Ranks from 1, ties given their average rank."""
    order = sorted(range(len(values)), key=values.__getitem__)
    result = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            result[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return result


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's ρ: Pearson's correlation of the ranks."""
    rx, ry = ranks(x), ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    var = (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5
    return cov / var if var else float("nan")


def report(records: list[dict[str, Any]]) -> None:
    final = [r["final_val"] for r in records]
    print(f"Spearman ρ with the final validation accuracy, {len(records)} fully trained candidates")
    test = spearman(final, [r["final_test"] for r in records])
    print(f"  final val accuracy {min(final):.4f}-{max(final):.4f}; ρ of final val with final test {test:+.3f}")
    epochs = min(len(r["epoch_val"]) for r in records)
    print("  epoch k of the long schedule (what a pruner sees):")
    for k in range(1, epochs + 1):
        print(f"    k={k:<3} ρ {spearman([r['epoch_val'][k - 1] for r in records], final):+.3f}")
    print("  a short complete schedule of k epochs:")
    for k in sorted({k for r in records for k in r["short_val"]}, key=int):
        have = [r for r in records if k in r["short_val"]]
        print(f"    k={k:<3} ρ {spearman([r['short_val'][k] for r in have], [r['final_val'] for r in have]):+.3f}")
    print("  at initialization:")
    for name in ("params", "flops"):
        print(f"    {name:<10} ρ {spearman([r[name] for r in records], final):+.3f}")
    for name in records[0]["proxies"]:
        print(f"    {name:<10} ρ {spearman([r['proxies'][name] for r in records], final):+.3f}")
    print("  each proxy's ρ minus the better of #params' and FLOPs', bootstrap over candidates (2,000 draws):")
    for name in records[0]["proxies"]:
        low, median, high, share = edge_over_size(records, name)
        print(f"    {name:<10} {median:+.3f} (90% interval {low:+.3f} to {high:+.3f}; above in {share:.0%} of draws)")


def edge_over_size(records: list[dict[str, Any]], proxy: str, draws: int = 2000) -> tuple[float, float, float, float]:
    """How much better `proxy` ranks than #params and FLOPs, resampling the candidates: the 5th,
    50th and 95th percentiles of the difference in ρ, and the share of draws where it is positive."""
    rng = random.Random(0)
    edges = []
    for _ in range(draws):
        drawn = [rng.choice(records) for _ in records]
        final = [r["final_val"] for r in drawn]
        size = max(spearman([r[key] for r in drawn], final) for key in ("params", "flops"))
        edges.append(spearman([r["proxies"][proxy] for r in drawn], final) - size)
    edges.sort()
    return edges[draws // 20], edges[draws // 2], edges[-draws // 20], sum(e > 0 for e in edges) / draws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", type=Path, default=REPO / "search_spaces" / "quickstart.yaml")
    parser.add_argument("--candidates", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0, help="which candidates are drawn")
    parser.add_argument("--short", type=int, nargs="*", default=[2, 4], help="short complete schedules (epochs)")
    parser.add_argument("--shard", default="0/1", help="I/N: train every N-th candidate from the I-th")
    parser.add_argument("--out", type=Path, default=Path("runs/rank_correlation.jsonl"))
    parser.add_argument("--report", action="store_true", help="print the table of the records in --out only")
    args = parser.parse_args()
    set_cpu_threads(1)
    if not args.report:
        shard, shards = (int(part) for part in args.shard.split("/"))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        done = (
            {json.dumps(json.loads(line)["spec"], sort_keys=True) for line in args.out.open()}
            if args.out.exists()
            else set()
        )
        base = args.space.resolve().parent
        for index, raw in candidates(args.space, args.candidates, args.seed):
            if index % shards != shard or json.dumps(raw, sort_keys=True) in done:
                continue
            record = measure(raw, base, args.short)
            with args.out.open("a") as file:
                file.write(json.dumps(record) + "\n")
            print(f"candidate {index}: val {record['final_val']:.4f} after {record['seconds']:.0f} s", flush=True)
    report([json.loads(line) for line in args.out.open()])


if __name__ == "__main__":
    main()
