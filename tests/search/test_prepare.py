"""`search`'s preparation in the parent process, before any worker starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import sandbox.train.data
from sandbox.search.flow import SearchSettings, prepare
from sandbox.spec.recipe import DataConfig
from tests.search.spaces import tiny_space


def test_the_dataset_is_fetched_once_in_the_parent(tmp_path: Path, write_yaml, monkeypatch: pytest.MonkeyPatch) -> None:
    fetched: list[DataConfig] = []

    def fetch(config: DataConfig) -> Path:
        fetched.append(config)
        return tmp_path

    monkeypatch.setattr(sandbox.train.data, "fetch", fetch)
    space: dict[str, Any] = tiny_space(workers=2)
    run = prepare(write_yaml(space), SearchSettings(data_dir=tmp_path, out=tmp_path / "run", device="cpu"))
    assert fetched == [DataConfig(dataset="fashion-mnist", root=tmp_path.resolve())]
    assert run.config.workers == 2 and run.device == "cpu"


@pytest.mark.parametrize("below", ["", "run"])
def test_an_out_that_is_a_file_is_one_line(tmp_path: Path, write_yaml, cli, below: str) -> None:
    taken = tmp_path / "notes.txt"
    taken.write_text("mine\n")
    out = taken / below if below else taken
    result = cli("search", write_yaml(tiny_space()), "--out", out, "--data-dir", tmp_path, "--device", "cpu")
    assert result.code == 2  # was a FileExistsError (or NotADirectoryError) traceback
    assert result.err.startswith(f"error: --out: {taken} is a file; a search's run directory must be a directory ")
    assert taken.read_text() == "mine\n"


def test_a_study_whose_every_trial_failed_exits_1_with_the_first_reason(tmp_path: Path, capsys) -> None:
    import optuna
    from optuna.trial import TrialState, create_trial

    from sandbox.commands.search import nothing_trained

    study = optuna.create_study()
    assert nothing_trained(study) == 0  # nothing failed: every candidate over budget, say
    for number in range(2):
        study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"error": f"RuntimeError: boom {number}"}))
    assert nothing_trained(study) == 1
    err = capsys.readouterr().err
    assert err == "error: no candidate trained to the end; 2 failed, trial 0: RuntimeError: boom 0\n"


def test_a_run_directory_that_cannot_be_made_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from sandbox.errors import SandboxError
    from sandbox.search.flow import make_run_dir

    def read_only(self: Path, *args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(Path, "mkdir", read_only)
    with pytest.raises(SandboxError, match=f"^cannot create the run directory {tmp_path}/run: Read-only file system$"):
        make_run_dir(tmp_path / "run")


@pytest.mark.parametrize(
    ("budget", "flag", "message"),
    [
        ({"flops": "3M", "floor": "2.9M"}, {}, r"search.budget.floor: no candidate reaches 2.90 MFLOPs: the largest"),
        ("3M", {"floor": "2.9M"}, r"--floor: no candidate reaches 2.90 MFLOPs"),
        ("3M", {"floor": "5M"}, r"--floor: 5.00 MFLOPs is not below the budget of 3.00 MFLOPs"),
    ],
)
def test_a_floor_that_leaves_no_candidate_is_refused_before_training(
    tmp_path: Path, write_yaml, monkeypatch: pytest.MonkeyPatch, budget, flag, message
) -> None:
    from sandbox.errors import SpecError

    monkeypatch.setattr(sandbox.train.data, "fetch", lambda config: tmp_path)
    space = tiny_space(budget=budget)
    with pytest.raises(SpecError, match=message):
        prepare(write_yaml(space), SearchSettings(data_dir=tmp_path, out=tmp_path / "r", **flag))


def test_a_name_that_climbs_out_of_runs_makes_its_run_directory_inside(
    tmp_path: Path, write_yaml, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox.train.data, "fetch", lambda config: tmp_path)
    monkeypatch.chdir(tmp_path)
    space: dict[str, Any] = {**tiny_space(), "name": "../../x"}  # wrote the study two levels above runs/
    run = prepare(write_yaml(space), SearchSettings(data_dir=tmp_path, device="cpu"))
    assert run.run_dir == tmp_path / "runs" / "x" and run.name == "../../x"  # the study keeps its name
