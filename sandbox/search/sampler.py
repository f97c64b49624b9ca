"""The sampler a process draws candidates with: the study's seed plus the number of its first trial.

Every process on a study (a `--workers` child, another machine) once built its sampler from the
same `--seed`, so each drew the same candidates and two machines trained the same networks. A
trial number is taken by one process only, so the number of the first trial a process runs sets
it apart from every other process on the study; the seed stays a function of the stored study,
so a one-process run is reproducible: a new study starts at trial 0 and draws exactly what the
plain seed draws, and a resumed one starts at the next stored number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState


class FirstTrialSeeded(BaseSampler):
    """Delegates to `make(seed + n)`, built at the process's first trial, whose number is n."""

    def __init__(self, make: Callable[[int], BaseSampler], seed: int) -> None:
        self._make = make
        self._seed = seed
        self._sampler: BaseSampler | None = None

    def _inner(self, trial: FrozenTrial | None) -> BaseSampler:
        if self._sampler is None:  # Optuna calls `before_trial` first, with the new trial
            self._sampler = self._make(self._seed + (trial.number if trial is not None else 0))
        return self._sampler

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._inner(trial).before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._inner(trial).infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._inner(trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self._inner(trial).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self._inner(trial).after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner(None).reseed_rng()
