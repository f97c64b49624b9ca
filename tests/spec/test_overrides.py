"""`--set KEY=VALUE`: dotted paths into the raw spec, YAML values, errors naming the key, on train and search."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import sandbox.train.data
from sandbox.errors import MAX_MESSAGE, SpecError
from sandbox.search.flow import SearchSettings, prepare
from sandbox.spec.overrides import apply_overrides, load_overridden, parse_setting, spec_path
from tests.deadline import deadline
from tests.search.spaces import tiny_space
from tests.spec.test_load import alias_bomb


def test_values_are_yaml_and_paths_reach_into_lists_and_missing_sections() -> None:
    raw = {"input": {"size": 28}, "stages": [{"modules": [{"repeat": 1}, {"repeat": 1}]}], "train": {"lr": 0.1}}
    result = apply_overrides(
        raw,
        [
            "train.lr=0.05",
            "input.size=96",
            "stages.0.modules.1.repeat=3",
            "train.augment.randaugment={ops: 1}",
            "train.ema=null",
            "data.root=~/flowers",
            "train.freeze=[stem, stages.0]",
        ],
    )
    assert result["train"] == {
        "lr": 0.05,
        "augment": {"randaugment": {"ops": 1}},
        "ema": None,
        "freeze": ["stem", "stages.0"],
    }
    assert result["input"] == {"size": 96} and result["stages"][0]["modules"][1] == {"repeat": 3}
    assert result["data"] == {"root": "~/flowers"}
    assert raw["train"] == {"lr": 0.1} and raw["stages"][0]["modules"][1] == {"repeat": 1}  # the original untouched
    assert apply_overrides(raw, ["train.lr=1", "train.lr=2"])["train"]["lr"] == 2  # the last one wins
    assert parse_setting("train.lr={float: [0.01, 0.1], log: true}")[1] == {"float": [0.01, 0.1], "log": True}
    assert spec_path(["stages", 0, "modules", 1, "repeat"]) == "stages[0].modules[1].repeat"


@pytest.mark.parametrize(
    ("setting", "path", "fragment"),
    [
        ("train.lr", "--set", "expected KEY=VALUE"),
        ("train..lr=1", "--set", "expected KEY=VALUE"),
        ("=1", "--set", "expected KEY=VALUE"),
        ("train.lr=[1", "--set train.lr", "not YAML"),
        ("stages.4.repeat=2", "--set stages.4.repeat", "stages is a list of 1: no index 4"),
        ("stages.x=2", "--set stages.x", "no key 'x'"),
        ("train.lr.low=1", "--set train.lr.low", "train.lr is float 0.1, not a mapping"),
        ("head.dropout.x=1", "--set head.dropout.x", "is a search primitive: set it whole"),
    ],
)
def test_a_setting_that_cannot_be_put_names_its_key(setting: str, path: str, fragment: str) -> None:
    raw = {"stages": [{"modules": []}], "train": {"lr": 0.1}, "head": {"dropout": {"choice": [0.1, 0.2]}}}
    with pytest.raises(SpecError, match=fragment) as err:
        apply_overrides(raw, [setting])
    assert err.value.path == path and "\n" not in str(err.value)


def test_overridden_spec_is_validated_like_the_file(write_yaml: Callable[..., Path], small_spec: Callable) -> None:
    path = write_yaml(small_spec())
    spec = load_overridden(path, ["train.lr=0.05", "input.channels=3", "stages.0.modules.0.repeat=2"])
    assert spec.train.lr == 0.05 and spec.channels == 3 and len(spec.stages[0].modules) == 2
    assert spec.source == path and spec.raw["train"] == {"lr": 0.05}
    for setting, key in [("train.lr=-1", "train.lr"), ("train.learning_rate=1", "train.learning_rate"),
                         ("stages.0.modules.0.repeat=0", "stages[0].modules[0].repeat")]:  # fmt: skip
        with pytest.raises(SpecError, match=r"\(set by --set ") as err:
            load_overridden(path, [setting])
        assert err.value.path == key


def test_a_misspelt_section_key_is_named_with_the_likely_one(
    write_yaml: Callable[..., Path], small_spec: Callable
) -> None:
    with pytest.raises(SpecError, match=r"allowed here: .*; did you mean 'lr'\?\) \(set by --set train.lrr=1\)"):
        load_overridden(write_yaml(small_spec()), ["train.lrr=1"])


def test_train_exits_2_naming_the_key(
    write_yaml: Callable[..., Path], small_spec: Callable, cli: Any, tmp_path: Path
) -> None:
    spec = write_yaml(small_spec())
    result = cli("train", spec, "--set", "train.learnin_rate=0.05", "--out", tmp_path / "run", "--device", "cpu")
    assert result.code == 2 and result.err.count("\n") == 1
    assert (
        result.err.startswith("error: train.learnin_rate: unknown key")
        and "--set train.learnin_rate=0.05" in result.err
    )
    assert not (tmp_path / "run").exists()
    result = cli("train", spec, "--set", "nosuch.key=1", "--device", "cpu")
    assert result.code == 2 and result.err.startswith("error: nosuch: unknown key")


def test_search_takes_the_same_settings(
    write_yaml: Callable[..., Path], tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox.train.data, "fetch", lambda config: tmp_path)  # nothing downloads
    space = write_yaml(tiny_space())
    argv = ["search", str(space), "--out", str(tmp_path / "run"), "--device", "cpu", "--data-dir", str(tmp_path)]
    sets = ["train.lr=0.05", "search.trials=3", "train.epochs=1"]
    run = prepare(space, SearchSettings(out=tmp_path / "run", device="cpu", data_dir=tmp_path, overrides=sets))
    assert run.space["train"]["lr"] == 0.05 and run.config.trials == 3 and run.recipe()["epochs"] == 1
    result = cli(*argv, "--set", "train.momentum=2")
    assert result.code == 2 and result.err.startswith("error: train.momentum: must be in [0, 1)")
    assert "(set by --set train.momentum=2)" in result.err


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (alias_bomb(), "more than 100,000 YAML nodes, aliases expanded: an alias bomb?"),
        ("[" * 2000 + "]" * 2000, "nested deeper than 64 levels"),
    ],
    ids=["alias-bomb", "deep"],
)
def test_a_set_value_is_held_to_a_spec_files_limits(
    write_yaml: Callable[..., Path], small_spec: Callable, value: str, fragment: str
) -> None:
    """A 10^9-node alias bomb in --set ran 84 s to a MemoryError; 2000-deep nesting was a RecursionError."""
    with deadline(10), pytest.raises(SpecError) as err:
        load_overridden(write_yaml(small_spec()), [f"train.lr={value}"])
    assert err.value.path == "--set train.lr" and fragment in err.value.message


def test_an_error_quoting_a_huge_value_stays_a_short_line(
    write_yaml: Callable[..., Path], small_spec: Callable
) -> None:
    """A 10^6-node value printed a 3.5 MB error line; under the node limit one still quotes 90,000 items."""
    value = "[" + ", ".join(["1"] * 90_000) + "]"
    with pytest.raises(SpecError) as err:
        load_overridden(write_yaml(small_spec()), [f"train.lr={value}"])
    message = str(err.value)
    assert message.startswith("train.lr: ") and len(message) <= MAX_MESSAGE and "characters cut]... " in message
