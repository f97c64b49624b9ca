"""`search`'s preparation in the parent process, before any worker starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import sandbox.train.data
from sandbox.cli import build_parser
from sandbox.commands.search import prepare
from sandbox.train.config import DataConfig
from tests.search.spaces import tiny_space


def test_the_dataset_is_fetched_once_in_the_parent(tmp_path: Path, write_yaml, monkeypatch: pytest.MonkeyPatch) -> None:
    fetched: list[DataConfig] = []

    def fetch(config: DataConfig) -> Path:
        fetched.append(config)
        return tmp_path

    monkeypatch.setattr(sandbox.train.data, "fetch", fetch)
    space: dict[str, Any] = tiny_space(workers=2)
    args = build_parser().parse_args(
        [
            "search",
            str(write_yaml(space)),
            "--data-dir",
            str(tmp_path),
            "--out",
            str(tmp_path / "run"),
            "--device",
            "cpu",
        ]
    )
    run = prepare(args)
    assert fetched == [DataConfig(dataset="fashion-mnist", root=tmp_path.resolve())]
    assert run.config.workers == 2 and run.device == "cpu"
