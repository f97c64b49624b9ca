"""The search end to end on tiny synthetic Fashion-MNIST files: budget, resume, crash, workers, faults.

Searches run as `python -m sandbox search` in subprocesses (as a user runs them), on a few
hundred synthetic 28x28 images, one epoch per trial, so each study takes seconds. The searches
whose tests check what a search decides (budget, failures, resuming, after a kill -9 too, the
reference) rather than how it runs as processes (the kill itself, Ctrl-C, workers, two at once) run
the same command in this process (`search_here`): a fresh interpreter would add seconds of imports
to each and nothing to what they check.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from sandbox.cli import main
from sandbox.search.ceiling import counted
from tests.at_once import at_once
from tests.idx import write_fashion_mnist
from tests.search.spaces import tiny_space

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = pytest.mark.slow  # subprocess searches: `pytest -m "not slow"` leaves them out

# Where the worker count is no part of what a test asserts: by default a search starts one worker per
# core, and on a small machine the spawned ones spend seconds importing torch, mostly to find the
# few one-epoch trials taken (and then make the trials' order depend on timing).
ONE_WORKER = ("--workers", "1")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fmnist")
    write_fashion_mnist(root, train=320, test=64)
    return root


@pytest.fixture(scope="module")
def slow_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """More images, so one epoch lasts seconds: the same recipe as `data_dir` (where data lives is no
    part of it), for a trial that must still be running when it is killed."""
    return write_fashion_mnist(tmp_path_factory.mktemp("fmnist-slow"), train=8000, test=64)


@pytest.fixture(scope="module")
def finished_run(
    tmp_path_factory: pytest.TempPathFactory, data_dir: Path
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One finished 4-trial search, shared by the tests that only read it or build on a copy."""
    root = tmp_path_factory.mktemp("finished")
    result = run_search(write_space(root), root / "run", data_dir, "--budget", "50M", *ONE_WORKER)
    assert result.returncode == 0, result.stderr
    return root, result


@pytest.fixture
def copied_run(finished_run, tmp_path: Path) -> Path:
    """A private copy of the finished search (space.yaml and run/) in tmp_path, to resume or break."""
    shutil.copytree(finished_run[0], tmp_path, dirs_exist_ok=True)
    return tmp_path


def write_space(directory: Path, **search: Any) -> Path:
    path = directory / "space.yaml"
    path.write_text(yaml.safe_dump(tiny_space(**search), sort_keys=False))
    return path


def search_command(spec: Path, out: Path, data_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "sandbox",
        "search",
        str(spec),
        "--out",
        str(out),
        "--data-dir",
        str(data_dir),
        *extra,
    ]


def run_search(spec: Path, out: Path, data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        search_command(spec, out, data_dir, *extra), capture_output=True, text=True, timeout=300, check=False
    )


Search = Callable[..., "subprocess.CompletedProcess[str]"]
HIDDEN_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


@pytest.fixture
def search_here(capfd: pytest.CaptureFixture[str], isolated_registry: None) -> Search:
    """`run_search` in this process: the command's `main`, as `python -m sandbox` calls it, with its
    exit code, its output taken at the file descriptors, and the warnings it raises added to its
    stderr as Python prints them (a warning is a line more on stderr in a fresh interpreter too)."""

    def run(spec: Path, out: Path, data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        command = search_command(spec, out, data_dir, *extra)
        capfd.readouterr()  # drop anything printed before
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            for hidden in HIDDEN_WARNINGS:  # as a fresh interpreter's default filters hide them
                warnings.simplefilter("ignore", hidden)
            try:
                code = main(command[3:])
            except SystemExit as exit:  # argparse's errors
                code = exit.code
        stdout, stderr = capfd.readouterr()
        stderr += "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in caught)
        return subprocess.CompletedProcess(command, code, stdout, stderr)

    return run


def load(out: Path, name: str = "tiny") -> optuna.Study:
    """The stored study, read without creating tables. Opening still writes Optuna's version rows
    if the search has not yet, a race that `open_storage` in the search tolerates."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{out / 'study.db'}", skip_table_creation=True)
    return optuna.load_study(study_name=name, storage=storage)


def wait_for_states(out: Path, ready, timeout: float = 120, training: bool = False) -> None:
    """Poll the study until `ready(states)` holds (the study may not exist yet); with `training`,
    also until a running trial has reported an epoch."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.5)
        try:
            trials = load(out).get_trials(deepcopy=False)
        except Exception:  # no run directory, study.db or study yet
            continue
        curves = any(t.intermediate_values for t in trials if t.state == TrialState.RUNNING)
        if ready([t.state for t in trials]) and (curves or not training):
            return
    raise AssertionError("the search never reached the awaited state")


def test_search_records_trials_and_writes_results(finished_run) -> None:
    root, result = finished_run
    trials = load(root / "run").trials
    assert len(counted(trials)) == 4  # trained candidates: repeats and over-budget draws take no place
    for trial in trials:
        assert trial.state == TrialState.COMPLETE
        assert {"flops", "params", "spec"} <= set(trial.user_attrs)
        rebuilt = yaml.safe_load(trial.user_attrs["spec"])  # any trial can be rebuilt by hand
        from sandbox.model.flops import count

        assert count(rebuilt).flops == trial.user_attrs["flops"]
    assert (root / "run" / "best.yaml").is_file()
    assert (root / "run" / "best" / "metrics.json").is_file()
    assert (root / "run" / "leaderboard.csv").read_text().startswith("trial,state,val_accuracy")
    assert "trial   0" in result.stdout and "best" in result.stdout
    assert 'id="trial-0"' in (root / "run" / "report.html").read_text()  # the search ends with its report


def test_over_budget_proposals_are_never_trained(tmp_path: Path, data_dir: Path, search_here: Search) -> None:
    # a budget between the smallest and the largest candidate: some of TPE's first (random) proposals
    # are over it, and stay trials, as a model-based sampler learns from them (random sampling makes
    # none: test_band.py)
    space = write_space(tmp_path, trials=8, sampler="tpe")
    result = search_here(space, tmp_path / "run", data_dir, "--budget", "1M", *ONE_WORKER)
    assert result.returncode == 0, result.stderr
    study = load(tmp_path / "run")
    over = [t for t in study.trials if t.user_attrs.get("over_budget")]
    assert over, "TPE's random startup should have proposed some candidates over 1 MFLOPs"
    for trial in over:
        assert trial.user_attrs["flops"] > 1_000_000
        assert trial.intermediate_values == {}
        assert "epochs_trained" not in trial.user_attrs
        assert trial.constraints["0"] > 0
        assert not (tmp_path / "run" / "trials" / f"{trial.number:04d}").exists()
    assert study.best_trial.user_attrs["flops"] <= 1_000_000
    assert f"{len(over)} over budget" in result.stdout
    with (tmp_path / "run" / "leaderboard.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    shown = [row for row in rows if row["val_accuracy"]]
    assert shown and all(float(row["val_accuracy"]) > 0 for row in shown)  # no stand-in value shown as a result
    assert all(not row["val_accuracy"] for row in rows if "over budget" in row["note"])


def test_a_budget_nothing_meets_exits_before_training(tmp_path: Path, data_dir: Path) -> None:
    result = run_search(write_space(tmp_path), tmp_path / "run", data_dir, "--budget", "1K")
    assert result.returncode == 2
    assert "search.budget: no candidate fits" in result.stderr and "smallest this space allows" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "study.db").exists()


def test_a_first_rung_at_the_last_epoch_exits_before_training(
    tmp_path: Path, data_dir: Path, search_here: Search
) -> None:
    space = write_space(tmp_path, pruner="asha", first_rung=3)
    result = search_here(space, tmp_path / "run", data_dir, "--epochs", "3")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: search.first_rung: 3 leaves no rung before the last of 3 epochs per trial"
    assert not (tmp_path / "run" / "study.db").exists()


def test_a_space_with_no_valid_candidate_names_the_key_before_training(
    tmp_path: Path, data_dir: Path, search_here: Search
) -> None:
    space = tiny_space()
    space["defaults"] = {"norm": "batchnrm"}
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    result = search_here(tmp_path / "space.yaml", tmp_path / "run", data_dir)
    assert result.returncode == 2
    assert result.stderr.startswith("error: defaults.norm: no candidate of this search space is a valid network")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "study.db").exists()


def test_rerun_resumes_and_keeps_finished_trials(copied_run: Path, data_dir: Path, search_here: Search) -> None:
    first = {t.number: t.values for t in load(copied_run / "run").trials}
    result = search_here(copied_run / "space.yaml", copied_run / "run", data_dir, "--trials", "6", *ONE_WORKER)
    assert result.returncode == 0, result.stderr
    trials = load(copied_run / "run").trials
    assert len(counted(trials)) == 6
    assert {t.number: t.values for t in trials if t.number in first} == first


def test_a_changed_space_is_refused_naming_the_dimension(copied_run: Path, data_dir: Path, search_here: Search) -> None:
    spec = copied_run / "space.yaml"
    space = yaml.safe_load(spec.read_text())
    space["stages"][0]["modules"][0]["branches"][1]["type"]["choice"].append("conv5x5")
    spec.write_text(yaml.safe_dump(space))
    result = search_here(spec, copied_run / "run", data_dir, "--trials", "6")
    assert result.returncode == 2
    assert result.stderr.startswith("error: stages[0].modules[0].branches[1].type: this search dimension changed")
    assert len(result.stderr.strip().splitlines()) == 1
    assert len(counted(load(copied_run / "run").trials)) == 4


def test_kill_9_mid_trial_then_rerun_loses_nothing(
    copied_run: Path, data_dir: Path, slow_data_dir: Path, search_here: Search
) -> None:
    spec, out = copied_run / "space.yaml", copied_run / "run"  # four finished trials
    process = subprocess.Popen(  # then a long trial (more data: the same recipe, slower), killed while it runs
        search_command(spec, out, slow_data_dir, "--trials", "20", *ONE_WORKER), stdout=subprocess.DEVNULL
    )
    try:
        wait_until_training(out)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    stored = load(out).trials
    before = {t.number: t.values for t in stored if t.state == TrialState.COMPLETE}
    running = [t.number for t in stored if t.state == TrialState.RUNNING]
    assert len(before) >= 4 and running
    # right after the kill; the retry takes the one place left (the failure, counted as finished, filled it)
    result = search_here(spec, out, data_dir, "--trials", str(len(counted(stored))), *ONE_WORKER)  # the retry
    assert result.returncode == 0, result.stderr
    trials = load(out).trials
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]  # the retry was run
    assert {t.number: t.values for t in trials if t.number in before} == before
    killed = trials[running[0]]
    assert killed.state == TrialState.FAIL and "died" in killed.user_attrs["error"]
    assert "cut off by a crash" in result.stdout
    (retried,) = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    # the cut-off candidate is tried again (it may have been killed before all its values were drawn)
    assert killed.params.items() <= retried.params.items()
    assert retried.state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert len(counted(trials)) == len(counted(stored))  # the retry took the killed trial's place


def wait_until_training(out: Path, timeout: float = 120) -> int:
    """Poll until a trial is training (FLOPs counted, not a repeat) in two polls in a row; its number."""
    deadline, seen = time.time() + timeout, None
    while time.time() < deadline:
        time.sleep(0.5)
        try:
            trials = load(out).get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        except Exception:  # no run directory, study.db or study yet
            continue
        training = [t.number for t in trials if "flops" in t.user_attrs and "duplicate_of" not in t.user_attrs]
        if seen in training:
            return seen
        seen = training[0] if training else None
    raise AssertionError("no trial started training")


def test_a_rerun_beside_an_empty_study_db_is_refused_and_overwrites_nothing(
    copied_run: Path, data_dir: Path, search_here: Search
) -> None:
    out = copied_run / "run"
    best, trained = (out / "best.yaml").read_text(), sorted((out / "trials").iterdir())
    assert trained
    for file in out.glob("study.db*"):
        file.unlink()
    (out / "study.db").write_bytes(b"")  # a full disk, a bad copy
    result = search_here(copied_run / "space.yaml", out, data_dir)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {out} holds the results of a search (trials, best, best.yaml")
    assert "study.db is empty (0 bytes)" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert (out / "study.db").stat().st_size == 0 and (out / "best.yaml").read_text() == best
    assert sorted((out / "trials").iterdir()) == trained  # nothing overwritten


def test_two_processes_on_one_sqlite_study_share_the_ceiling_and_draw_apart(tmp_path: Path, data_dir: Path) -> None:
    # as the docs' two-machine example runs them: the same command, the same --seed, at once; one worker
    # each, so that the two workers asserted on are the two processes
    command = search_command(write_space(tmp_path, trials=4), tmp_path / "run", data_dir, "--epochs", "2", *ONE_WORKER)
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        if process.returncode != 0:  # pytest.fail, as an assertion's message is cut to a line or two
            pytest.fail(f"a search exited with {process.returncode}; the end of its stderr:\n{stderr[-3000:]}")
    trials = load(tmp_path / "run").trials
    assert len(counted(trials)) == 4  # [8/6] before: each started one more when the target was near
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    firsts: dict[str, Any] = {}
    for trial in trials:
        firsts.setdefault(trial.user_attrs["worker"], trial.params)
    assert len(firsts) == 2, "both processes should have run trials"
    first, second = firsts.values()
    assert first != second  # one --seed made each process draw the same candidates


def test_a_worker_exits_when_its_parent_is_killed(tmp_path: Path, data_dir: Path) -> None:
    from sandbox.search.storage import _alive

    out = tmp_path / "run"
    command = search_command(write_space(tmp_path, trials=6), out, data_dir, "--workers", "2", "--epochs", "200")
    parent = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (workers := spawned_workers(out, parent.pid)):
            time.sleep(0.5)
        assert workers, "the spawned worker never started a trial"
        os.kill(parent.pid, signal.SIGKILL)
        _, stderr = parent.communicate(timeout=60)
        deadline = time.time() + 30
        while time.time() < deadline and any(_alive(pid) for pid in workers):
            time.sleep(0.2)
        assert not [pid for pid in workers if _alive(pid)], "a worker outlived its parent"
        assert "worker 1: the search's main process is gone; stopping" in stderr
    finally:
        parent.kill()


def spawned_workers(out: Path, parent: int) -> list[int]:
    """Pids of the worker processes (other than `parent`) that hold a running trial."""
    try:
        trials = load(out).get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    except Exception:
        return []
    pids = {int(str(t.user_attrs.get("worker", ":0")).rpartition(":")[2]) for t in trials}
    return sorted(pid for pid in pids if pid not in (0, parent))


def test_four_workers_share_sqlite(tmp_path: Path, data_dir: Path) -> None:
    # trials of a few epochs, so the spawned workers (which import torch first) get their share
    command = ("--workers", "4", "--epochs", "3")
    result = run_search(write_space(tmp_path, trials=12), tmp_path / "run", data_dir, *command)
    assert result.returncode == 0, result.stderr
    assert "database is locked" not in result.stdout + result.stderr
    trials = load(tmp_path / "run").trials
    trained = counted(trials)  # free draws (over budget, repeats) take no place
    assert len(trained) == 12  # a ceiling: running trials count, so no worker starts a 13th ([15/12] before)
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)  # none lost or failed
    assert len({t.user_attrs["worker"] for t in trials}) >= 2


def _open_each_at_once(urls: list[str], barrier: Any, errors: Any) -> None:
    """Open each new storage the moment every other process is ready to open it too."""
    from sandbox.search.storage import open_storage

    for url in urls:
        barrier.wait()
        try:
            open_storage(url)
        except Exception as err:
            errors.put(f"{url}: {err}")


def test_processes_opening_a_new_database_at_once_all_succeed(tmp_path: Path) -> None:
    # workers started together, a second machine, or a reader polling a starting search
    urls = [f"sqlite:///{tmp_path / f'study-{i}.db'}" for i in range(8)]
    assert at_once(_open_each_at_once, urls) == []


def test_workers_share_a_postgresql_database(tmp_path: Path, data_dir: Path) -> None:
    url = os.environ.get("SANDBOX_TEST_POSTGRES")
    if not url:
        pytest.skip("no PostgreSQL server (set SANDBOX_TEST_POSTGRES; .ci/run starts one)")
    try:
        optuna.storages.RDBStorage(url)
    except Exception as err:  # a server that cannot be reached is an environment problem here
        pytest.skip(f"PostgreSQL at {url} unreachable: {err}")
    space = write_space(tmp_path, trials=4)
    name = f"tiny-{os.getpid()}-{time.time_ns()}"
    spec = yaml.safe_load(space.read_text())
    spec["name"] = name
    space.write_text(yaml.safe_dump(spec))
    # two machines' commands (here two processes, each with two workers), at once, on one server
    command = search_command(space, tmp_path / "run", data_dir, "--workers", "2", "--storage", url)
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        if process.returncode != 0:  # pytest.fail, as an assertion's message is cut to a line or two
            pytest.fail(f"a search exited with {process.returncode}; the end of its stderr:\n{stderr[-3000:]}")
    trials = optuna.load_study(study_name=name, storage=url).trials
    assert len(counted(trials)) == 4 and all(t.state == TrialState.COMPLETE for t in trials)  # the ceiling holds


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://nobody@127.0.0.1:1/x", "error: cannot open the study storage"),
        ("sqlite://", "error: the study storage sqlite:// is an in-memory database"),  # trained, then lost all
        ("sqlite:///:memory:", "error: the study storage sqlite:///:memory: is an in-memory database"),
    ],
)
def test_bad_storage_url_is_one_line(tmp_path: Path, data_dir: Path, search_here: Search, url: str, says: str) -> None:
    result = search_here(write_space(tmp_path), tmp_path / "run", data_dir, "--storage", url)
    assert result.returncode == 2
    assert result.stderr.startswith(says)
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "trials").exists()  # refused before any training


def test_a_failing_candidate_is_recorded_and_the_search_goes_on(
    tmp_path: Path, data_dir: Path, search_here: Search
) -> None:
    plugin = tmp_path / "flaky.py"
    plugin.write_text(
        "from torch import nn\nfrom sandbox import register_branch\n\n\n"
        "class Boom(nn.Conv2d):\n    def forward(self, x):\n"
        "        if self.training and self.out_channels == 4:\n            raise RuntimeError('boom in training')\n"
        "        return super().forward(x)\n\n\n"
        "@register_branch('boom')\ndef boom(in_channels: int, *, out: int) -> nn.Module:\n"
        "    return Boom(in_channels, out, 1)\n"
    )
    space = tiny_space(trials=6, sampler="random")
    space["plugins"] = ["flaky.py"]
    space["stages"][0]["modules"][0]["branches"][2] = {"type": "boom", "out": {"choice": [4, 8]}}
    spec = tmp_path / "space.yaml"
    spec.write_text(yaml.safe_dump(space))
    result = search_here(spec, tmp_path / "run", data_dir, *ONE_WORKER)
    assert result.returncode == 0, result.stderr
    trials = load(tmp_path / "run").trials
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert failed and all("boom in training" in t.user_attrs["error"] for t in failed)
    assert any(t.state == TrialState.COMPLETE for t in trials)


def test_multi_objective_reports_the_pareto_front(tmp_path: Path, data_dir: Path, search_here: Search) -> None:
    spec = write_space(tmp_path, objective=["accuracy", "flops"], sampler="nsga2", population=2)
    result = search_here(spec, tmp_path / "run", data_dir, *ONE_WORKER)
    assert result.returncode == 0, result.stderr
    assert "Pareto front" in result.stdout
    study = load(tmp_path / "run")
    assert len(study.directions) == 2 and study.best_trials


def test_ctrl_c_fails_the_running_trials_and_prints_the_leaderboard(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "run"
    extra = ("--epochs", "200", "--workers", "2")
    command = search_command(write_space(tmp_path, trials=6), out, data_dir, *extra)
    # a shell that starts the suite in the background ignores SIGINT, and children inherit that
    restore_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=restore_sigint,
        start_new_session=True,
    )
    try:
        wait_for_states(out, lambda states: states.count(TrialState.RUNNING) == 2, training=True)
        os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C: to the parent and the worker
        stdout, stderr = process.communicate(timeout=300)  # a bound on hanging, not a speed test
    finally:
        process.kill()
    assert process.returncode == 130
    assert "interrupted" in stdout and "trials:" in stdout
    assert f"resume with: python -m sandbox {shlex.join(command[3:])}\n" in stdout  # the same command resumes
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr  # none from the workers
    trials = load(out).trials
    failed = [t.number for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 2 and TrialState.RUNNING not in [t.state for t in trials]
    retries = [t.system_attrs["failed_trial"] for t in trials if t.state == TrialState.WAITING]
    assert sorted(retries) == failed  # each retried once on resuming
    assert (out / "leaderboard.csv").is_file()


def test_report_writes_plots(finished_run, cli) -> None:
    run_dir = finished_run[0] / "run"
    result = cli("report", run_dir)
    assert result.code == 0, result.err
    for name in ("optimization_history", "accuracy_vs_flops", "intermediate_values"):
        png = run_dir / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_reference_and_the_best_train_alike_with_each_seed_and_are_reused(
    copied_run: Path, data_dir: Path, search_here: Search
) -> None:
    reference = tiny_space()
    reference.update(name="ref", stem={"type": "conv3x3", "out": 8}, train={"epochs": 3, "batch_size": 32})
    reference["stages"][0]["modules"][0]["branches"] = [{"type": "conv1x1", "out": 8}]
    del reference["search"]
    (copied_run / "reference.yaml").write_text(yaml.safe_dump(reference))
    spec = copied_run / "space.yaml"
    space = yaml.safe_load(spec.read_text())
    space["search"].update(reference="reference.yaml", reference_seeds=2)
    spec.write_text(yaml.safe_dump(space))

    first = search_here(spec, copied_run / "run", data_dir)
    assert first.returncode == 0, first.stderr
    compare = copied_run / "run" / "compare"
    for seed in (0, 1):  # the best's recipe, each seed
        metrics = json.loads((compare / f"reference-seed-{seed}" / "metrics.json").read_text())
        recipe = (metrics["name"], metrics["epochs"], metrics["train"]["batch_size"], metrics["seed"])
        assert recipe == ("ref", 1, 64, seed)
    from sandbox.search.results import best_trial

    best = best_trial(load(copied_run / "run"))
    retrained = json.loads((compare / "best-seed-1" / "metrics.json").read_text())
    assert (retrained["seed"], retrained["flops"]) == (1, best.user_attrs["flops"])
    assert not (compare / "best-seed-0").exists()  # the best's own trial is its first seed's run

    comparison = json.loads((compare / "comparison.json").read_text())
    assert comparison["best"]["val"] == [best.values[0], retrained["val_accuracy"]]
    val_gap = statistics.fmean(comparison["best"]["val"]) - statistics.fmean(comparison["reference"]["val"])
    assert f"val {100 * val_gap:+.2f} points" in first.stdout
    assert "(means over 2 seeds)" in first.stdout

    again = search_here(spec, copied_run / "run", data_dir)
    assert again.returncode == 0, again.stderr
    assert first.stdout.count("for the comparison") == 3 and "for the comparison" not in again.stdout
    assert f"val {100 * val_gap:+.2f} points" in again.stdout

    # another seed is another recipe: the study's trials trained with seed 0, so it is refused
    shifted = search_here(spec, copied_run / "run", data_dir, "--seed", "5", "--reference-seeds", "1")
    assert shifted.returncode == 2
    assert shifted.stderr.startswith("error: seed (--seed or search.seed): the training recipe changed")
    assert not (compare / "best-seed-5").exists()


def test_reference_seeds_without_a_reference_is_refused(tmp_path: Path, data_dir: Path, search_here: Search) -> None:
    result = search_here(write_space(tmp_path), tmp_path / "run", data_dir, "--reference-seeds", "3")
    assert result.returncode == 2
    assert result.stderr.startswith("error: --reference-seeds: needs search.reference")
    assert not (tmp_path / "run" / "study.db").exists()


def test_a_missing_reference_is_refused_before_training(tmp_path: Path, data_dir: Path, search_here: Search) -> None:
    result = search_here(write_space(tmp_path, reference="nowhere.yaml"), tmp_path / "run", data_dir)
    assert result.returncode == 2
    assert result.stderr.startswith("error: search.reference: no such spec file")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "study.db").exists()
