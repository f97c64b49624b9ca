"""Opening a study: resumed only when it is this search's, never silently replaced, never in memory."""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

import sandbox.search.storage
from sandbox.errors import SandboxError, SpecError
from sandbox.search.storage import STUDY_ATTR, fail_dead_local_trials, first_difference, open_storage, open_study
from tests.idx import write_fashion_mnist
from tests.search.spaces import tiny_space
from tests.search.test_objective import changed_network, changed_recipe, make_run


def test_an_unchanged_rerun_resumes(tmp_path: Path) -> None:
    first = open_study(make_run(tmp_path))
    first.enqueue_trial({"stem.out": 8})
    again = open_study(make_run(tmp_path))
    assert again._study_id == first._study_id and len(again.trials) == 1


@pytest.mark.parametrize(
    ("other", "path"),
    [
        (lambda root: make_run(root, changed_recipe()), "train.lr"),
        (lambda root: make_run(root, changed_network()), "stages[1].modules[0].branches[0].out"),
        (lambda root: make_run(root, epochs=3), "epochs (--epochs, search.epochs or train.epochs)"),
        (lambda root: make_run(root, seed=1), "seed (--seed or search.seed)"),
    ],
    ids=["train", "network", "epochs", "seed"],
)
def test_a_rerun_trained_another_way_is_refused_naming_the_change(tmp_path: Path, other: Any, path: str) -> None:
    open_study(make_run(tmp_path))
    with pytest.raises(SpecError) as err:
        open_study(other(tmp_path))
    assert err.value.path == path
    assert "changed since study 'tiny'" in str(err.value) and "start a new study with another --out" in str(err.value)


PLUGIN = """
from torch import nn
from sandbox import register_branch


@register_branch("wide")
def wide(in_channels: int, out: int) -> nn.Module:
    return nn.Conv2d(in_channels, out * {factor}, 1)
"""


@pytest.mark.parametrize("given", ["spec", "flag"])
def test_an_edited_plugin_file_is_refused_naming_it(tmp_path: Path, given: str) -> None:
    """Same name and parameters, 16x the width: its old trials' accuracies are not this code's."""
    plugin = tmp_path / "wide.py"
    plugin.write_text(PLUGIN.format(factor=1))
    space = {**tiny_space(), "plugins": ["wide.py"]} if given == "spec" else tiny_space()
    files = (plugin,) if given == "flag" else ()
    open_study(replace(make_run(tmp_path, space), plugin_files=files))
    open_study(replace(make_run(tmp_path, space), plugin_files=files))  # unchanged: resumes
    plugin.write_text(PLUGIN.format(factor=16))
    with pytest.raises(SpecError) as err:
        open_study(replace(make_run(tmp_path, space), plugin_files=files))
    assert str(err.value) == (
        "plugins: the plugin file wide.py changed since study 'tiny' in "
        f"{tmp_path} was created, and its trials were trained with the code it had then: restore that code to "
        "resume, or start a new study with another --out"
    )


def test_a_study_stored_before_plugin_hashes_still_resumes(tmp_path: Path) -> None:
    study = open_study(make_run(tmp_path))
    attrs = dict(study.user_attrs[STUDY_ATTR])
    del attrs["plugins"]
    study.set_user_attr(STUDY_ATTR, attrs)
    assert open_study(make_run(tmp_path))._study_id == study._study_id


def test_the_same_recipe_spelled_by_flag_or_by_spec_is_the_same(tmp_path: Path) -> None:
    first = open_study(make_run(tmp_path))  # train.epochs: 1
    again = open_study(make_run(tmp_path, epochs=1))  # --epochs 1: no change
    space = tiny_space()
    space["train"]["seed"] = 7  # the search's seed trains every trial; train.seed is not used
    space["data"]["root"] = "/elsewhere"  # where the data lives is no part of the recipe
    moved = open_study(make_run(tmp_path, space))
    # the same study, resumed, its stored recipe untouched
    assert again._study_id == first._study_id == moved._study_id
    assert again.user_attrs[STUDY_ATTR] == moved.user_attrs[STUDY_ATTR] == first.user_attrs[STUDY_ATTR]


def test_another_out_starts_a_new_study_with_the_new_recipe(tmp_path: Path) -> None:
    open_study(make_run(tmp_path / "a"))
    study = open_study(make_run(tmp_path / "b", changed_recipe()))
    assert study.user_attrs[STUDY_ATTR]["recipe"]["train"]["lr"] == 0.02


def test_a_shared_storage_is_told_to_use_another_name(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    run = make_run(tmp_path / "a")
    open_study(replace(run, storage_url=url))
    other = make_run(tmp_path / "b", changed_recipe())
    with pytest.raises(SpecError, match="another --out and a spec whose name: is not 'tiny'"):
        open_study(replace(other, storage_url=url))


def stored_study(root: Path, **attrs: Any) -> None:
    """A study named like the tiny search's, holding `attrs` and one trial, made by something else."""
    storage = open_storage(f"sqlite:///{root}/study.db")
    study = optuna.create_study(study_name="tiny", storage=storage, direction="maximize")
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    study.enqueue_trial({"stem.out": 8})


@pytest.mark.parametrize(
    ("attrs", "says"),
    [
        ({"space": {}, "objective": ["accuracy"]}, "layout 1; this one reads layout 2, which stores the recipe"),
        ({STUDY_ATTR: {"layout": 3}}, "layout 3; this one reads layout 2)"),
        ({}, "was not made by a sandbox search"),
    ],
    ids=["older", "newer", "foreign"],
)
def test_a_study_of_another_layout_is_refused(tmp_path: Path, attrs: dict[str, Any], says: str) -> None:
    stored_study(tmp_path, **attrs)
    with pytest.raises(SandboxError, match="resume it with the sandbox that wrote it") as err:
        open_study(make_run(tmp_path))
    assert says in str(err.value)
    assert len(optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path}/study.db").trials) == 1


def leave_results(run_dir: Path) -> None:
    """What a finished search leaves beside its study.db."""
    (run_dir / "trials" / "0000").mkdir(parents=True)
    (run_dir / "best").mkdir()
    (run_dir / "best.yaml").write_text("name: tiny\n")


def test_an_empty_study_db_beside_results_is_refused_and_left_alone(tmp_path: Path) -> None:
    leave_results(tmp_path)
    (tmp_path / "study.db").write_bytes(b"")  # a full disk, a bad copy
    with pytest.raises(SandboxError) as err:
        open_study(make_run(tmp_path))
    assert f"{tmp_path / 'study.db'} is empty (0 bytes)" in str(err.value)
    assert "restore the study (study.db) from a backup" in str(err.value) and "\n" not in str(err.value)
    assert (tmp_path / "study.db").stat().st_size == 0  # untouched, for whoever restores it
    assert (tmp_path / "best.yaml").read_text() == "name: tiny\n"


def test_a_missing_study_db_beside_results_is_refused(tmp_path: Path) -> None:
    leave_results(tmp_path)
    with pytest.raises(SandboxError, match="study.db is missing"):
        open_study(make_run(tmp_path))
    assert not (tmp_path / "study.db").exists()


def test_a_renamed_search_in_the_same_run_directory_is_refused(tmp_path: Path) -> None:
    open_study(make_run(tmp_path))
    leave_results(tmp_path)
    run = make_run(tmp_path)
    with pytest.raises(SandboxError, match="holds no study 'renamed' \\(it holds 'tiny'\\)"):
        open_study(replace(run, name="renamed"))


def test_an_empty_study_db_in_a_run_directory_without_results_starts_the_study(tmp_path: Path) -> None:
    (tmp_path / "study.db").write_bytes(b"")  # nothing could be lost
    assert open_study(make_run(tmp_path)).study_name == "tiny"


def test_an_unreadable_study_db_names_the_file_and_the_way_out(tmp_path: Path) -> None:
    (tmp_path / "study.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(SandboxError) as err:
        open_study(make_run(tmp_path))
    message = str(err.value)
    assert message.startswith("cannot open the study storage") and "file is not a database" in message
    assert f"restore {tmp_path / 'study.db'} from a backup" in message and "\n" not in message


def test_an_intact_study_db_that_sqlite_cannot_write_beside_is_not_called_damaged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a read-only run directory (root writes anyway, so SQLite's refusal is made here)
    import sqlite3

    def read_only(url: str) -> optuna.storages.RDBStorage:
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(sandbox.search.storage, "_open_storage_once", read_only)
    with pytest.raises(SandboxError) as err:
        open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    message = str(err.value)
    assert "backup" not in message and "\n" not in message  # was "restore study.db from a backup"
    assert message.endswith(f"(SQLite writes beside study.db even to read it: copy {tmp_path} somewhere writable)")


def test_a_storage_that_fails_mid_search_is_one_line() -> None:
    import sqlite3

    import sqlalchemy.exc

    from sandbox.search.storage import storage_errors

    full = sqlite3.OperationalError("database or disk is full")
    with pytest.raises(SandboxError) as err, storage_errors("sqlite:///run/study.db"):
        raise sqlalchemy.exc.OperationalError("INSERT INTO trials", {}, full)
    assert str(err.value) == (
        "the study storage sqlite:///run/study.db failed: database or disk is full "
        "(what it holds is kept: once fixed, rerun to resume)"
    )


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file::memory:?cache=shared", "sqlite+pysqlite://"]
)
def test_in_memory_sqlite_is_refused(url: str) -> None:
    with pytest.raises(SandboxError, match="is an in-memory database, which no rerun can resume") as err:
        open_storage(url)
    assert "\n" not in str(err.value)


def test_the_command_refuses_a_changed_recipe_in_one_line(tmp_path: Path, cli, data_dir: Path) -> None:
    open_study(make_run(tmp_path / "run"))
    spec = tmp_path / "space.yaml"
    spec.write_text(yaml.safe_dump(changed_recipe()))
    result = cli("search", spec, "--out", tmp_path / "run", "--data-dir", data_dir, "--device", "cpu")
    assert result.code == 2
    assert result.err.startswith("error: train.lr: the training recipe changed since study 'tiny'")
    assert "(not set, now 0.02)" in result.err and len(result.err.strip().splitlines()) == 1


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return write_fashion_mnist(tmp_path / "fmnist", train=40, test=10)


def test_differences_are_named_by_yaml_path() -> None:
    old = {"train": {"lr": 0.1}, "stages": [{"out": 8}, {"out": 16}]}
    assert first_difference(old, {"train": {"lr": 0.1}, "stages": [{"out": 8}, {"out": 16}]}) is None
    assert first_difference(old, {"train": {"lr": 0.1}, "stages": [{"out": 8}]})[:2] == ("stages[1]", {"out": 16})
    assert first_difference(old, {"train": {}, "stages": old["stages"]})[0] == "train.lr"
    assert first_difference({"x": float("nan")}, {"x": float("nan")}) is None


def test_two_reruns_at_once_fail_and_retry_a_dead_trial_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both reruns saw the dead trial RUNNING: one died with UpdateFinishedTrialError, the trial was retried
    twice and the study ended over --trials. Each waits at a barrier once it judged the worker dead, so that
    without a shared lock both judge it before either fails it."""
    run = make_run(tmp_path)
    study = open_study(run)
    trial = study.ask()
    trial.set_user_attr("worker", f"{socket.gethostname()}:999999999")  # no such process
    barrier = threading.Barrier(2)

    def judged_dead(pid: int) -> bool:
        with contextlib.suppress(threading.BrokenBarrierError):  # under the lock the other never arrives
            barrier.wait(timeout=2)
        return False

    monkeypatch.setattr(sandbox.search.storage, "_alive", judged_dead)
    outcomes: list[object] = []

    def rerun() -> None:
        try:
            outcomes.append(fail_dead_local_trials(open_study(run)))
        except Exception as err:  # noqa: BLE001 - the race's failure, kept for the assertion
            outcomes.append(err)

    threads = [threading.Thread(target=rerun) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes in ([[0], []], [[], [0]])  # one rerun failed and retried trial 0, the other found it done
    states = [t.state for t in optuna.load_study(study_name="tiny", storage=run.storage_url).trials]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.WAITING]
