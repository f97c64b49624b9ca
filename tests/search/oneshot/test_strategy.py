"""`search.strategy: one-shot`: its keys, and a search that trains its top k as ordinary trials."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from sandbox import SpecError
from sandbox.spec.search import search_config
from tests.idx import write_fashion_mnist
from tests.search.spaces import tiny_space
from tests.search.test_end_to_end import load, run_search


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"strategy": "oneshot"}, "search.strategy"),
        ({"one_shot": {"top_k": 2}}, "search.one_shot"),
        ({"strategy": "one-shot", "one_shot": {"top": 2}}, "search.one_shot.top"),
        ({"strategy": "one-shot", "one_shot": {"top_k": 0}}, "search.one_shot.top_k"),
        ({"strategy": "one-shot", "one_shot": {"top_k": 5, "finalists": 4}}, "search.one_shot.finalists"),
        (
            {"strategy": "one-shot", "one_shot": {"calibration": 2, "screen_calibration": 3}},
            "search.one_shot.screen_calibration",
        ),  # fmt: skip
    ],
)
def test_bad_one_shot_keys_are_refused_by_key(section: dict[str, Any], key: str) -> None:
    with pytest.raises(SpecError) as err:
        search_config(section)
    assert err.value.path == key


def test_the_default_search_reads_a_one_shot_section_unchanged() -> None:
    plain = search_config({"trials": 5, "sampler": "random"})
    assert search_config({"trials": 5, "sampler": "random", "strategy": "one-shot", "one_shot": {"top_k": 2}}) == plain


@pytest.mark.slow
def test_a_one_shot_search_trains_its_top_k_as_trials(tmp_path: Path) -> None:
    data_dir = write_fashion_mnist(tmp_path / "data", train=320, test=64)
    one_shot = {"epochs": 1, "candidates": 6, "top_k": 2, "finalists": 3, "calibration": 2, "screen_calibration": 1,
                "screen_images": 8}  # fmt: skip
    space = tiny_space(strategy="one-shot", one_shot=one_shot, sampler="random", pruner="none")
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    result = run_search(path, tmp_path / "run", data_dir)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "run" / "one_shot.json").read_text())
    scored, finalists, rest = record["scored"], record["scored"][:3], record["scored"][3:]
    assert len(scored) == 6 and record["screen_images"] == 8
    assert [c["score"] for c in finalists] == sorted((c["score"] for c in finalists), reverse=True)
    assert not any("score" in c for c in rest)  # screened only, ranked by the screen below the finalists
    assert [c["screen"] for c in rest] == sorted((c["screen"] for c in rest), reverse=True)
    assert min(c["screen"] for c in finalists) >= max(c["screen"] for c in rest)
    trials = load(tmp_path / "run").get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert [t.params for t in trials] == [c["params"] for c in scored[:2]]
    assert (tmp_path / "run" / "best.yaml").is_file()
