"""A trained table of a search space: random in-budget candidates, each trained once with the space's recipe.

The ground truth for comparing search strategies without training (`search_vs_random.py --surrogate`)
and for ranking a supernet's scores. It draws `--candidates` distinct, valid candidates under the
space's FLOP budget with a seeded random walk (always the same ones), trains each exactly as the
space's search would (its `train:` recipe, `search.seed`, the CPU, one thread a process), then trains
the first `--reruns` of them again with `--rerun-seed`, which measures the run-to-run noise.

One JSON line per trained candidate in `--out`: `index`, `params` (the Optuna parameters a trial of
the search would have, keyed by YAML path), `spec` (the concrete spec), `flops`, `params_count`,
`epoch_val` (validation accuracy after each epoch), `final_val`, `final_test`, `correct` (per-image
bits, `sandbox.paired`), `seed`, `precision`, `threads`, `cpu`, `seconds`. A killed run resumes: a
rerun skips what `--out` already holds. `--procs N` trains in N processes.

    python bench/table.py --procs 2                     # about an hour on 2 cores
    python bench/table.py --report                      # what the table holds so far
"""

from __future__ import annotations

import argparse
import fcntl
import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results" / "quickstart_table.jsonl"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or "unknown"


def draws(space_path: Path, n: int, seed: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """`n` distinct, valid, within-budget candidates as (Optuna params, concrete spec); the same for a seed."""
    from sandbox.model.flops import count
    from sandbox.space.bounds import random_suggest
    from sandbox.spec.load import read_yaml, validate
    from sandbox.spec.primitives import Primitive, sample
    from sandbox.spec.search import search_config

    space = read_yaml(space_path)
    budget = search_config(space.get("search") or {}).budget
    rng, seen, found = random.Random(seed), set(), []
    pick = random_suggest(rng)
    while len(found) < n:
        params: dict[str, Any] = {}

        def suggest(primitive: Primitive, params: dict[str, Any] = params) -> Any:
            params[primitive.path] = pick(primitive)
            return params[primitive.path]

        raw = sample(space, suggest)
        raw.pop("search", None)
        key = json.dumps(raw, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        try:
            flops = count(validate(raw, base=space_path.resolve().parent)).flops
        except Exception:
            continue
        if budget is None or flops <= budget:
            found.append((params, raw))
    return found


def jobs(candidates: int, reruns: int, seed: int, rerun_seed: int) -> Iterator[tuple[int, int]]:
    """(candidate index, training seed) in training order: the re-runs spread among the first runs, so a
    table cut short still measures the noise."""
    every = max(1, candidates // max(1, reruns))
    done_reruns = 0
    for index in range(candidates):
        yield index, seed
        if (index + 1) % every == 0 and done_reruns < reruns:
            yield done_reruns, rerun_seed
            done_reruns += 1
    for index in range(done_reruns, reruns):
        yield index, rerun_seed


def train_one(index: int, params: dict[str, Any], raw: dict[str, Any], base: Path, seed: int) -> dict[str, Any]:
    from sandbox.model.flops import count
    from sandbox.spec.load import validate
    from sandbox.train.loop import train_run

    spec = validate(raw, base=base)
    counts = count(spec)
    started = time.perf_counter()
    metrics = train_run(spec, device="cpu", seed=seed, progress=False)
    return {
        "index": index,
        "params": params,
        "spec": raw,
        "flops": counts.flops,
        "params_count": counts.params,
        "epoch_val": [row["val_accuracy"] for row in metrics["history"]],
        "final_val": metrics["val_accuracy"],
        "final_test": metrics["test_accuracy"],
        "correct": metrics["correct"],
        "seed": seed,
        "precision": metrics["train_precision"],
        "threads": metrics["threads"],
        "cpu": cpu_model(),
        "seconds": time.perf_counter() - started,
    }


def read_table(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append(path: Path, record: dict[str, Any]) -> None:
    """One line, written under a lock: the processes share the file."""
    with path.open("a") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        file.write(json.dumps(record) + "\n")
        file.flush()
        fcntl.flock(file, fcntl.LOCK_UN)


def work(args: argparse.Namespace) -> None:
    from sandbox.spec.load import read_yaml
    from sandbox.spec.search import search_config
    from sandbox.train.device import set_cpu_threads

    set_cpu_threads(1)
    shard, shards = (int(part) for part in args.shard.split("/"))
    seed = search_config(read_yaml(args.space).get("search") or {}).seed
    candidates = draws(args.space, args.candidates, args.draw_seed)
    base = args.space.resolve().parent
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for position, (index, run_seed) in enumerate(jobs(args.candidates, args.reruns, seed, args.rerun_seed)):
        if position % shards != shard:
            continue
        done = {(r["index"], r["seed"]) for r in read_table(args.out)}  # re-read: other processes append
        if (index, run_seed) in done:
            continue
        params, raw = candidates[index]
        record = train_one(index, params, raw, base, run_seed)
        append(args.out, record)
        print(
            f"[{shard}] candidate {index} seed {run_seed}: {record['flops'] / 1e6:.2f} MFLOPs, "
            f"val {100 * record['final_val']:.2f}% after {record['seconds']:.0f} s",
            flush=True,
        )


def report(path: Path) -> None:
    table = read_table(path)
    firsts = [r for r in table if r["index"] >= 0 and r["seed"] == min(t["seed"] for t in table)]
    print(f"{path}: {len(table)} trained runs, {len(firsts)} distinct candidates")
    if not table:
        return
    vals = sorted(100 * r["final_val"] for r in firsts)
    print(f"  final val {vals[0]:.2f}-{vals[-1]:.2f}%, median {vals[len(vals) // 2]:.2f}%")
    by_key = {}
    for r in table:
        by_key.setdefault(r["index"], {})[r["seed"]] = r["final_val"]
    pairs = [v for v in by_key.values() if len(v) == 2]
    if pairs:
        diffs = [100 * (a - b) for a, b in (tuple(v.values()) for v in pairs)]
        sd = (sum(d * d for d in diffs) / len(diffs) / 2) ** 0.5
        print(f"  {len(pairs)} re-run pairs: run-to-run SD of final val {sd:.2f} points")
    hours = sum(r["seconds"] for r in table) / 3600
    print(f"  {hours:.2f} process-hours of training")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", type=Path, default=REPO / "search_spaces" / "quickstart.yaml")
    parser.add_argument("--candidates", type=int, default=96)
    parser.add_argument("--reruns", type=int, default=16, help="candidates trained again with --rerun-seed")
    parser.add_argument("--draw-seed", type=int, default=0, help="which candidates are drawn")
    parser.add_argument("--rerun-seed", type=int, default=1)
    parser.add_argument("--procs", type=int, default=1, help="training processes, one thread each")
    parser.add_argument("--shard", default="0/1", help=argparse.SUPPRESS)  # one process's share of --procs
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--report", action="store_true", help="print what the table holds and stop")
    args = parser.parse_args()
    if args.candidates < 1 or args.procs < 1 or not 0 <= args.reruns <= args.candidates:
        parser.error("--candidates and --procs must be positive, --reruns between 0 and --candidates")
    if args.report:
        report(args.out)
        return
    if args.procs > 1:
        forwarded = [a for a in sys.argv[1:] if not a.startswith("--procs")]
        if "--procs" in sys.argv:
            at = sys.argv.index("--procs")
            forwarded = sys.argv[1:at] + sys.argv[at + 2 :]
        children = [
            subprocess.Popen([sys.executable, __file__, *forwarded, "--shard", f"{i}/{args.procs}"])
            for i in range(args.procs)
        ]
        sys.exit(max(child.wait() for child in children))
    work(args)
    report(args.out)


if __name__ == "__main__":
    main()
