"""The surrogate benchmark: it learns what a table holds, refuses a table it cannot use, and compares
strategies over paired seeds with the project's own search code."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.paths import REPO, SEARCH_SPACES

sys.path.insert(0, str(REPO / "bench"))
from surrogate import TableError, fit, read_table  # noqa: E402
from table import draws  # noqa: E402

from sandbox.model.flops import count  # noqa: E402
from sandbox.spec.load import validate  # noqa: E402

QUICKSTART = SEARCH_SPACES / "quickstart.yaml"


def synthetic_table(path: Path, candidates: int = 40, reruns: int = 6, noise: float = 0.0005) -> Path:
    """A table whose accuracy is 0.6 points a doubling of FLOPs plus a little run-to-run noise."""
    rng = random.Random(0)
    lines = []
    for index, (params, raw) in enumerate(draws(QUICKSTART, candidates, seed=3)):
        counts = count(validate(raw, base=SEARCH_SPACES))
        mean = 0.87 + 0.006 * math.log2(counts.flops / 1e6)
        for seed in (0, 1) if index < reruns else (0,):
            record: dict[str, Any] = {"index": index, "params": params, "spec": raw, "flops": counts.flops,
                                      "params_count": counts.params, "seed": seed}  # fmt: skip
            record["final_val"] = mean + rng.gauss(0, noise)
            lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_table(tmp_path_factory.mktemp("table") / "table.jsonl")


def test_the_surrogate_ranks_held_out_candidates_by_what_the_table_holds(table: Path) -> None:
    surrogate = fit(read_table(table))
    assert surrogate.candidates == 40
    assert surrogate.rho > 0.8  # held out: each fold predicted by a model fitted without it
    assert 0.0002 < surrogate.noise < 0.001  # the injected 0.05 points, from 6 pairs


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "cannot read"),
        ("{not json\n", "line 1: not a table record"),
        ('{"spec": {}}\n', "line 1: not a table record (a record needs spec, final_val, seed and index)"),
        ('{"spec": {}, "final_val": 0.5, "seed": 0, "index": 0}\n', "holds 1 records; a surrogate needs 10"),
    ],
)
def test_a_table_it_cannot_use_is_one_line(tmp_path: Path, text: str | None, message: str) -> None:
    path = tmp_path / "table.jsonl"
    if text is not None:
        path.write_text(text)
    with pytest.raises(TableError, match=r"^--surrogate: .*" + message.replace("(", r"\(").replace(")", r"\)")):
        read_table(path)


def compare(table: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(REPO / "bench" / "search_vs_random.py"), "--surrogate", str(table), *flags]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO / "bench")


def test_strategies_are_compared_over_paired_seeds(table: Path, tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    flags = ["--seeds", "3", "--epochs", "32", "--procs", "1", "--strategies", "band-0.75", "--json", str(out)]
    done = compare(table, *flags)
    assert done.returncode == 0, done.stderr
    figures = json.loads(out.read_text())["strategies"]
    assert set(figures) == {"random", "band-0.75"}
    assert figures["random"]["seed"] == figures["band-0.75"]["seed"] == [0, 1, 2]
    assert len(figures["band-0.75"]["score"]) == 3 and figures["band-0.75"]["epochs"] == [32] * 3
    assert "gain over random" in done.stdout


def compare_here(
    table: Path, *flags: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> subprocess.CompletedProcess[str]:
    """`compare` in this process, for flags refused before any work (a fresh interpreter would spend
    seconds importing torch for an argparse error): the script's main with its argv, in bench/."""
    import search_vs_random

    command = [sys.executable, str(REPO / "bench" / "search_vs_random.py"), "--surrogate", str(table), *flags]
    monkeypatch.setattr(sys, "argv", command[1:])
    monkeypatch.chdir(REPO / "bench")
    capsys.readouterr()  # drop anything printed before
    with pytest.raises(SystemExit) as exit:
        search_vs_random.main()
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(command, exit.value.code, out, err)


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--seeds", "0"], "--seeds: a paired comparison needs at least 2 seeds"), (["--strategies", "x"], "unknown x")],
)
def test_bad_flags_exit_2_naming_the_flag(
    table: Path, flags: list[str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    done = compare_here(table, *flags, monkeypatch=monkeypatch, capsys=capsys)
    assert done.returncode == 2 and message in done.stderr
