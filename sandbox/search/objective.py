"""The architecture search: one Optuna study, any number of workers, resumable.

Everything durable lives in the study's storage (SQLite in the run directory by default, any
Optuna storage URL otherwise): trials, their concrete specs and FLOPs, and the space's fingerprint,
so a rerun resumes, workers on other machines join, and a changed space is refused.

Candidates outside the band (over the budget, or under `search.budget.floor`): random sampling
never makes a trial of one (`sandbox.search.band`). A model-based sampler's proposal outside it is
counted before training, never trained, and ends COMPLETE with a pessimistic stand-in
value (accuracy 0) plus a violated constraint (the FLOPs outside the band). COMPLETE because GP and
NSGA-II learn only from complete trials; the constraint makes every sampler treat them as infeasible
and `study.best_trial(s)` skip them; the `over_budget` / `under_floor` attribute keeps the stand-in
out of every leaderboard, plot and summary. Such draws, invalid ones and repeats cost no training
and do not count towards `--trials` (`sandbox.search.ceiling`).

A repeated candidate (samplers do propose one again) is answered with the earlier trial's result
only when that trial trained the very same network with the same recipe: the same concrete spec
(`train:` and `data:` included) and the same epochs and seed. Equal parameters are not enough: a
fixed part of the network or the recipe may differ between the runs that shared the study.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import FrozenTrial, Trial, TrialState

from sandbox.errors import SpecError, describe
from sandbox.model.flops import count
from sandbox.search.progress import TrialProgress
from sandbox.search.record import (
    COPIED,
    DEVICE_LOST,
    DUPLICATE_OF,
    EPOCHS_TRAINED,
    ERROR,
    FLOPS,
    FROM_METRICS,
    INVALID,
    OVER_BUDGET,
    PARAMS,
    RUN_DIR,
    SEED,
    SPEC,
    UNDER_FLOOR,
    WORKER,
    correct,
)
from sandbox.search.results import is_result
from sandbox.search.run import THIS_WORKER, SearchRun
from sandbox.spec.load import validate
from sandbox.spec.primitives import Primitive
from sandbox.train.device import is_device_lost

# libyaml's emitter where PyYAML was built with it: every draw's spec is stored, and the pure-Python
# emitter took half of a draw's time (out-of-band draws included); both write the same YAML.
SAFE_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def suggest_with(trial: Trial) -> Callable[[Primitive], Any]:
    """A `space.Suggest` that asks the Optuna trial, keyed by the primitive's YAML path."""

    def suggest(primitive: Primitive) -> Any:
        dist = primitive.distribution
        if isinstance(dist, CategoricalDistribution):
            return trial.suggest_categorical(primitive.path, dist.choices)
        if isinstance(dist, FloatDistribution):
            return trial.suggest_float(primitive.path, dist.low, dist.high, log=dist.log, step=dist.step)
        return trial.suggest_int(primitive.path, dist.low, dist.high, log=dist.log, step=dist.step)

    return suggest


class Objective:
    """Sample, count, skip if over budget, train with pruning; record everything on the trial."""

    def __init__(self, run: SearchRun, device: str, train: Callable[..., Mapping[str, Any]] | None = None) -> None:
        """`train` (default `sandbox.train.loop.train_run`) is replaceable so benchmarks of the samplers
        can score candidates without training them."""
        self.run = run
        self.device = device
        self.train = train

    def __call__(self, trial: Trial) -> float | tuple[float, float]:
        trial.set_user_attr(WORKER, THIS_WORKER)
        try:
            return self._evaluate(trial)
        except optuna.TrialPruned:
            raise
        except Exception as err:  # recorded, so the leaderboard says why and not "interrupted"
            trial.set_user_attr(ERROR, describe(err))
            if is_device_lost(err):
                trial.set_user_attr(DEVICE_LOST, True)  # the worker ends; a fresh process retries the trial
            raise

    def _evaluate(self, trial: Trial) -> float | tuple[float, float]:
        run, config = self.run, self.run.config
        raw = run.concrete_spec(suggest_with(trial), trial.number)
        try:
            spec = validate(raw, base=run.base)
            counts = count(spec)
        except SpecError as err:  # e.g. every branch of a module chosen `none`
            self._store_spec(trial, raw)
            trial.set_user_attr(INVALID, str(err))
            set_budget_constraint(trial, 1e12)  # finite: GP models constraint values
            return self._stand_in(0)
        trial.set_user_attr(FLOPS, counts.flops)
        trial.set_user_attr(PARAMS, counts.params)
        over = counts.flops - config.budget if config.budget else -1
        floor = config.floor_flops
        under = floor - counts.flops if floor is not None else -1
        set_budget_constraint(trial, float(max(over, under)))
        if over > 0:
            trial.set_user_attr(OVER_BUDGET, True)
            return self._stand_in(counts.flops)
        if under > 0:
            trial.set_user_attr(UNDER_FLOOR, True)
            return self._stand_in(counts.flops)
        self._store_spec(trial, raw)
        earlier = self._same_candidate(trial, raw, self.run.config.trial_epochs(spec.train.epochs))
        if earlier is not None:  # samplers do propose a trained candidate again: reuse its result
            trial.set_user_attr(DUPLICATE_OF, earlier.number)
            for key in COPIED:
                trial.set_user_attr(key, earlier.user_attrs.get(key))
            return tuple(earlier.values) if config.multi_objective else earlier.values[0]
        return self._train(trial, spec, counts.flops)

    @staticmethod
    def _store_spec(trial: Trial, raw: Mapping[str, Any]) -> None:
        """Every draw but those outside the band: a band may reject ten draws per training, and their
        specs would be most of the study's storage and a seventh of a draw's time; their parameters
        and FLOPs say what they were."""
        trial.set_user_attr(SPEC, yaml.dump(raw, Dumper=SAFE_DUMPER, sort_keys=False))

    def _same_candidate(self, trial: Trial, raw: Mapping[str, Any], epochs: int) -> FrozenTrial | None:
        """A finished trial that trained this network with this recipe: the same concrete spec, as many
        epochs and the same seed; None if there is none."""
        wanted = _unnamed(raw)
        for earlier in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if (
                is_result(earlier)
                and earlier.params == trial.params  # cheap, and rules out most at once
                and earlier.user_attrs.get(SEED) == self.run.config.seed
                and earlier.user_attrs.get(EPOCHS_TRAINED) == epochs
                and _unnamed(yaml.safe_load(earlier.user_attrs[SPEC])) == wanted
            ):
                return earlier
        return None

    def _stand_in(self, flops: int) -> float | tuple[float, float]:
        """The pessimistic value of an infeasible candidate (never shown as a result)."""
        return (0.0, float(flops)) if self.run.config.multi_objective else 0.0

    def _train(self, trial: Trial, spec: Any, flops: int) -> float | tuple[float, float]:
        from sandbox.train.loop import train_run

        train = self.train or train_run
        run, config = self.run, self.run.config
        out_dir = run.trial_dir(trial.number)
        epochs = self.run.config.trial_epochs(spec.train.epochs)
        rungs = config.rungs(epochs) if config.rung_schedule == "complete" else []
        progress = TrialProgress(
            trial.study.get_trials(deepcopy=False), trial.number, sum(rungs) + epochs, config.trials,
            bar=sys.stderr.isatty() and (config.workers or 1) == 1,
        )  # fmt: skip

        def on_epoch(epoch: int, record: Mapping[str, Any]) -> None:
            progress.epoch(epoch, record)
            trial.set_user_attr(EPOCHS_TRAINED, epoch + 1)
            if config.multi_objective:
                return  # Optuna prunes single-objective studies only
            trial.report(record["val_accuracy"], epoch + 1)  # step = epochs trained, as rungs count them
            if trial.should_prune():
                raise optuna.TrialPruned(f"val accuracy {record['val_accuracy']:.2%} at epoch {epoch + 1}")

        def run_for(epochs: int | None, **where: Any) -> Mapping[str, Any]:
            return train(
                spec,
                epochs=epochs,
                device=self.device,
                seed=config.seed,
                data_dir=run.data_dir,
                progress=False,
                **where,
            )

        try:
            if config.rung_schedule == "complete":
                metrics = self._train_by_rungs(trial, run_for, epochs, out_dir, progress)
            else:
                metrics = run_for(config.epochs, out_dir=out_dir, on_epoch=on_epoch)
        except Exception:  # pruned or failed: no half-written run directory is left
            shutil.rmtree(out_dir, ignore_errors=True)
            raise
        finally:
            progress.close()
        for key in FROM_METRICS:
            trial.set_user_attr(key, metrics[key])
        for split, bits in metrics.get("correct", {}).items():  # per-image records: `sandbox.paired`
            trial.set_user_attr(correct(split), bits)
        trial.set_user_attr(RUN_DIR, str(out_dir))
        accuracy = float(metrics["val_accuracy"])
        return (accuracy, float(flops)) if config.multi_objective else accuracy

    def _train_by_rungs(
        self,
        trial: Trial,
        run_for: Callable[..., Mapping[str, Any]],
        epochs: int,
        out_dir: Path,
        progress: TrialProgress,
    ) -> Mapping[str, Any]:
        """`rung_schedule: complete`: before the full run, a complete short schedule per rung (the
        recipe with as many epochs as the rung), its final validation accuracy reported at that
        rung; a trial pays for every schedule it trains."""
        spent = 0

        def shown(epoch: int, record: Mapping[str, Any]) -> None:
            progress.epoch(spent + epoch, record)

        for rung in self.run.config.rungs(epochs):
            accuracy = float(run_for(rung, on_epoch=shown)["val_accuracy"])
            spent += rung
            trial.set_user_attr(EPOCHS_TRAINED, spent)
            trial.report(accuracy, rung)
            if trial.should_prune():
                raise optuna.TrialPruned(f"val accuracy {accuracy:.2%} after a complete {rung}-epoch schedule")

        def tally(epoch: int, record: Mapping[str, Any]) -> None:
            shown(epoch, record)
            trial.set_user_attr(EPOCHS_TRAINED, spent + epoch + 1)

        metrics = run_for(epochs, out_dir=out_dir, on_epoch=tally)
        trial.report(float(metrics["val_accuracy"]), epochs)
        return metrics


def set_budget_constraint(trial: Trial, over: float) -> None:
    """FLOPs over the budget (> 0: infeasible), as the one-element list Optuna's `constraints_func`
    stores and Optuna reads as constraint "0". `trial.set_constraint` stores a named key instead,
    which optuna-dashboard 0.21 does not read: it showed over-budget trials as feasible."""
    trial.storage.set_trial_system_attr(trial._trial_id, "constraints", (over,))


def _unnamed(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A concrete spec without its name, which holds the trial's number."""
    return {key: value for key, value in raw.items() if key != "name"}
