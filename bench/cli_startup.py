"""How fast the CLI answers `--help` and `--version`, against `python -c "import torch"` on the same machine.

The command modules import torch, timm and Optuna only inside `run`, so answering `--help` should
cost a fraction of importing torch (the target: under a third). Each command line runs `--repeat`
times, interleaved with the torch import so that a busy machine slows both alike; the best time of
each is printed with its ratio to the torch import's best, and whether the process imported torch.

    python bench/cli_startup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

COMMANDS = ("plugins", "show", "train", "evaluate", "search", "report", "export", "predict")
TORCH = [sys.executable, "-c", "import torch"]
PROBE = "import runpy, sys; sys.argv = {argv!r}; runpy.run_module('sandbox', run_name='__main__')"


def lines() -> list[tuple[str, list[str]]]:
    sandbox = [sys.executable, "-m", "sandbox"]
    rows = [("--help", [*sandbox, "--help"]), ("--version", [*sandbox, "--version"])]
    rows += [(f"{name} --help", [*sandbox, name, "--help"]) for name in COMMANDS]
    return [*rows, ("plugins", [*sandbox, "plugins"])]  # lists the built-ins, which are torch modules


def seconds(command: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - began


def imports_torch(argv: list[str]) -> bool:
    """Whether the command line loads torch, read from the process itself after it answers."""
    code = f"import sys\ntry:\n    {PROBE.format(argv=['sandbox', *argv])}\nexcept SystemExit:\n    pass\n"
    code += "print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return result.stdout.strip().splitlines()[-1] == "True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = lines()
    best = {name: float("inf") for name, _ in rows} | {"import torch": float("inf")}
    for _ in range(args.repeat):
        best["import torch"] = min(best["import torch"], seconds(TORCH))
        for name, command in rows:
            best[name] = min(best[name], seconds(command))
    torch_time = best["import torch"]
    print(f"{'command line':<20} {'best s':>7} {'/ torch':>8}  torch imported")
    print(f"{'import torch':<20} {torch_time:>7.3f} {1:>8.2f}")
    for name, command in rows:
        print(f"{name:<20} {best[name]:>7.3f} {best[name] / torch_time:>8.2f}  {imports_torch(command[3:])}")


if __name__ == "__main__":
    main()
