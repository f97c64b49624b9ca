"""A search from start to end, as one call: what `sandbox search` and `sandbox.search(...)` both run.

`prepare` reads the space and the settings and refuses, before any training, what cannot work (a
budget nothing meets, a floor nothing reaches, a bad `train:` or `data:` value); `search` runs the
study's workers, reports (leaderboard, best spec and weights, report.html) and compares the best
with `search.reference`. What it has to say goes to `say` line by line (the command prints it);
the trials' own progress lines come from the workers, on stdout, as in a terminal.
"""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from sandbox.errors import SandboxError, SpecError, did_you_mean
from sandbox.runs import METRICS_FILE, Run, file_name, read_metrics
from sandbox.search.run import SearchRun
from sandbox.spec.recipe import DataConfig
from sandbox.spec.search import search_config

Say = Callable[[str], None]


@dataclass(frozen=True)
class SearchResult:
    """A finished (or interrupted) search: its study, its best trial and run, its leaderboard."""

    study: optuna.Study
    run_dir: Path
    best_trial: FrozenTrial | None  # None: no candidate trained to the end
    best: Run | None  # `best/`, the best trial's run; None where it trained on another machine
    leaderboard: list[dict[str, Any]]  # as leaderboard.csv lists them: results by rank, then the rest
    interrupted: bool


def check_sections(space: Mapping[str, Any], data_dir: Path | None) -> DataConfig:
    """Fail before any training on a bad `train:` or `data:` value, which every candidate shares
    (checked as the cheapest candidate carries them); the `data:` section as that candidate reads it."""
    from sandbox.spec.primitives import lowest, sample
    from sandbox.spec.recipe import data_config, train_config

    concrete = sample({key: space[key] for key in ("train", "data") if key in space}, lowest)
    train_config(concrete.get("train") or {})
    return data_config(concrete.get("data") or {}, data_dir=data_dir)


@dataclass(frozen=True)
class SearchSettings:
    """What `sandbox search`'s flags set, by the flags' names (`reference_seeds` is --reference-seeds,
    `plugins` --plugin, `overrides` --set); None leaves the spec's value (or the default)."""

    trials: int | None = None
    budget: str | int | None = None  # a FLOP count: 50M, 1.5G, 30000000
    floor: str | float | None = None  # a FLOP count, or a fraction of the budget
    epochs: int | None = None
    workers: int | None = None
    seed: int | None = None
    reference_seeds: int | None = None
    out: str | Path | None = None  # default: runs/<spec name>
    storage: str | None = None  # an Optuna storage URL; default: sqlite:///OUT/study.db
    device: str = "auto"
    threads: int | None = None
    data_dir: str | Path | None = None
    plugins: Sequence[str | Path] = ()
    overrides: Mapping[str, Any] | Sequence[str] | None = None  # KEY=VALUE strings, or a mapping of them


def search_settings_from(keywords: Mapping[str, Any]) -> SearchSettings:
    """The Python API's keyword arguments as settings; an unknown one is a SpecError naming it."""
    known = [field.name for field in dataclasses.fields(SearchSettings)]
    for key in keywords:
        if key not in known:
            raise SpecError(
                key, f"unknown search setting; expected one of {', '.join(known)}{did_you_mean(key, known)}"
            )
    return SearchSettings(**keywords)


def prepare(spec: str | Path | Mapping[str, Any], settings: SearchSettings = SearchSettings()) -> SearchRun:
    """Read the space (a file, a shipped name or a mapping, its plugin paths relative to the working
    directory) and the settings, named as the command's flags; refuse, before any training, a budget
    nothing can meet."""
    from sandbox.search.reference import reference_path
    from sandbox.space.bounds import largest_flops, no_valid_candidate, smallest_flops
    from sandbox.spec.load import load_plugins, read_yaml
    from sandbox.spec.overrides import apply_overrides, as_settings
    from sandbox.spec.primitives import primitives
    from sandbox.spec.shipped import resolve_spec
    from sandbox.train.data import fetch
    from sandbox.train.device import resolve_device, set_cpu_threads

    resolved = str(resolve_device(settings.device))  # before anything loads or trains: a missing GPU is one line
    if isinstance(spec, Mapping):
        given, base, stem = dict(spec), Path.cwd(), "search"
    else:
        spec_path = resolve_spec(spec)
        given, base, stem = read_yaml(spec_path), spec_path.resolve().parent, spec_path.stem
    space = apply_overrides(given, as_settings(settings.overrides))  # --set: as if the file said so
    load_plugins(space, base, settings.plugins)
    data = Path(settings.data_dir) if settings.data_dir is not None else None
    config = search_config(space.get("search") or {}).with_overrides(
        trials=settings.trials,
        budget=settings.budget,
        floor=settings.floor,
        epochs=settings.epochs,
        workers=settings.workers,
        seed=settings.seed,
        reference_seeds=settings.reference_seeds,
    )
    if not primitives(space):
        where = "the spec" if isinstance(spec, Mapping) else str(spec_path)
        raise SpecError(where, "has no search primitives ({choice: ...}, {int: ...}, {float: ...})")
    name = str(space.get("name") or stem)
    run_dir = (Path(settings.out) if settings.out is not None else Path("runs") / file_name(name)).resolve()
    existing = next(path for path in (run_dir, *run_dir.parents) if path.exists())
    if not existing.is_dir():  # before the dataset is fetched, so the mistake costs nothing
        raise SpecError("--out", f"{existing} is a file; a search's run directory must be a directory (or not exist)")
    fetch(check_sections(space, data))  # once, here: workers must not all download it at once
    set_cpu_threads(settings.threads)  # this process is worker 0; a bad --threads fails here
    smallest = smallest_flops(space, base)  # also proves, before any training, that some candidate builds
    if smallest is None:
        raise no_valid_candidate(space, base)
    if config.budget is not None and smallest > config.budget:
        raise SpecError(
            "search.budget",
            f"no candidate fits {config.budget / 1e6:.2f} MFLOPs: the smallest this space allows is "
            f"{smallest / 1e6:.2f} MFLOPs ({smallest:,} FLOPs)",
        )
    floor_key = "--floor" if settings.floor is not None else "search.budget.floor"
    config.check_band(floor_key)
    floor_flops = config.floor_flops
    if floor_flops is not None:
        largest = largest_flops(space, base)
        if largest is not None and largest < floor_flops:
            raise SpecError(
                floor_key,
                f"no candidate reaches {floor_flops / 1e6:.2f} MFLOPs: the largest this space allows is "
                f"{largest / 1e6:.2f} MFLOPs",
            )
    if config.reference is None and settings.reference_seeds is not None:
        raise SpecError("--reference-seeds", "needs search.reference in the spec, the network to compare with")
    reference = reference_path(config.reference, base) if config.reference is not None else None
    storage_url = settings.storage or f"sqlite:///{run_dir / 'study.db'}"
    plugin_files = tuple(Path(file).resolve() for file in settings.plugins)
    search = SearchRun(
        space, base, name, config, run_dir, storage_url, resolved, data, plugin_files, reference, settings.threads
    )
    per_trial = search.recipe()["epochs"]
    if config.pruner in ("asha", "hyperband") and isinstance(per_trial, int) and not config.rungs(per_trial):
        raise SpecError(
            "search.first_rung", f"{config.first_rung} leaves no rung before the last of {per_trial} epochs per trial"
        )
    return search


def search(
    spec: str | Path | Mapping[str, Any], settings: SearchSettings = SearchSettings(), say: Say = print
) -> SearchResult:
    """Prepare, run the study's workers, report and compare with the reference; rerun to resume.
    Ctrl-C stops it cleanly: the running trials are marked failed (retried on resuming) and the
    result says `interrupted`."""
    from sandbox.search.interrupt import acknowledge, stop_requests
    from sandbox.search.oneshot.strategy import one_shot_stage
    from sandbox.search.report import record_settings, search_settings, write_report
    from sandbox.search.results import rows
    from sandbox.search.storage import fail_dead_local_trials, open_study, storage_errors
    from sandbox.search.workers import plan_workers, run_workers
    from sandbox.spec.overrides import as_settings, blaming

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sandbox prints its own trial lines
    sets = as_settings(settings.overrides)
    with blaming(sets):
        run = prepare(spec, dataclasses.replace(settings, overrides=sets))
    make_run_dir(run.run_dir)
    study = open_study(run)
    with storage_errors(run.storage_url), stop_requests(signal.SIGINT) as stop:  # Ctrl-C stops it cleanly
        try:
            revived = fail_dead_local_trials(study)
            if revived:
                say(f"resuming: trials {', '.join(map(str, revived))} were cut off by a crash; marked failed, retried")
            run = one_shot_stage(run, study, say)  # search.strategy: one-shot enqueues its picks, trials = top_k
            run = plan_workers(run, study)
            spelled = "(a mapping)" if isinstance(spec, Mapping) else str(spec)
            record_settings(study, search_settings(run, spelled))
            say(_study_line(run, len(study.get_trials(deepcopy=False))))
            run_workers(run)
        except KeyboardInterrupt:
            acknowledge()
            stop.requested = True  # however it was raised
    interrupted = stop.requested
    if interrupted:
        fail_dead_local_trials(study)  # a worker that had to be killed left its trial running
        say("\ninterrupted: the running trials are marked failed and retried on resuming; results so far:")
    best = report(run, study, say)
    if best is not None and run.reference is not None and not interrupted:
        compare_with_reference(run, run.reference, best, say)
    if best is not None:  # after the comparison: the report draws the reference network's point
        write_report(study, run.run_dir)
        say(f"report: {run.run_dir / 'report.html'}")
    best_dir = run.run_dir / "best"
    best_run = (
        Run(best_dir, read_metrics(best_dir)) if best is not None and (best_dir / METRICS_FILE).is_file() else None
    )
    leaderboard = [row for _, row in rows(study.get_trials(deepcopy=False))]
    return SearchResult(study, run.run_dir, best, best_run, leaderboard, interrupted)


def _rungs(search: SearchRun) -> str:
    epochs = search.recipe()["epochs"]
    rungs = search.config.rungs(epochs) if isinstance(epochs, int) else []
    return f" (rungs at epochs {', '.join(map(str, rungs))})" if rungs else ""


def _study_line(search: SearchRun, stored: int) -> str:
    config = search.config
    return (
        f"study {search.name!r} in {search.storage_url}: {stored} trials stored, target {config.trials}; "
        f"sampler {config.sampler}, pruner {config.pruner}{_rungs(search)}, "
        f"budget {config.budget / 1e6 if config.budget else float('inf'):.2f} MFLOPs"
        + (f", floor {config.floor_flops / 1e6:.2f} MFLOPs" if config.floor_flops else "")
        + f"; {config.workers} worker{'s' * (config.workers != 1)}"
    )


def make_run_dir(run_dir: Path) -> None:
    """The run directory, or one line saying why it cannot be made (read-only, no space)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SandboxError(f"cannot create the run directory {run_dir}: {err.strerror or err}") from err


def report(search: SearchRun, study: optuna.Study, say: Say = print) -> FrozenTrial | None:
    """Leaderboard, summary, best.yaml and best/; returns the best trial."""
    from sandbox.search.results import (
        best_trial,
        export_best,
        format_leaderboard,
        pareto_front,
        summary,
        write_leaderboard,
    )

    trials = study.get_trials(deepcopy=False)
    write_leaderboard(trials, search.run_dir / "leaderboard.csv")
    say(summary(trials))
    if search.config.multi_objective:
        say("Pareto front (validation accuracy vs FLOPs):")
        say(format_leaderboard(pareto_front(trials), limit=len(trials)))
    else:
        say(format_leaderboard(trials))
    best = best_trial(study)
    if best is not None:
        export_best(best, search.run_dir)
        say(f"best: trial {best.number}, spec {search.run_dir / 'best.yaml'}, weights {search.run_dir / 'best'}")
    say(f"leaderboard: {search.run_dir / 'leaderboard.csv'}")
    return best


def compare_with_reference(search: SearchRun, path: Path, best: FrozenTrial, say: Say = print) -> None:
    """Train the reference spec at `path` as the best candidate was trained (with each of
    `search.reference_seeds` seeds, the best too) and say how they compare."""
    from sandbox.search.reference import (
        ComparisonRuns,
        best_spec,
        format_comparison,
        measure_best,
        measure_reference,
        reference_spec,
        write_comparison,
    )

    config = search.config
    seeds = [config.seed + offset for offset in range(config.reference_seeds)]
    runs = ComparisonRuns(search.run_dir, config.epochs, search.device, search.data_dir)
    candidate = best_spec(best, search.base)
    best_measured = measure_best(best, candidate, seeds, runs)
    reference = measure_reference(reference_spec(path, candidate), seeds, runs)
    write_comparison(best_measured, reference, search.run_dir)
    say(format_comparison(best_measured, reference, path))
