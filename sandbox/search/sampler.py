"""The sampler a trial is drawn with: the study's seed plus the trial's number.

Every process on a study (a `--workers` child, another machine) once built its sampler from the
same `--seed`, so each drew the same candidates. Here each trial gets a sampler of its own, seeded
with the study's seed plus the trial's number, which one process only takes. So the candidate a
trial draws at random (random sampling, and TPE's and GP's first trials) depends on the seed and
its number alone, not on how many processes share the study or which of them runs it: a seed gives
the same random phase with one worker or four. What workers change is which trials are finished
when a model-based sampler proposes the next one (TPE then treats running trials as if they had
failed: its constant liar), so the modelled candidates may differ between runs with other worker
counts. Optuna's samplers keep no state across trials but their random generator (NSGA-II keeps
its generations in the study), so a fresh one per trial loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState


class TrialSeeded(BaseSampler):
    """Delegates each trial to `make((seed + trial.number) % 2**32)`, built when Optuna first asks about it."""

    def __init__(self, make: Callable[[int], BaseSampler], seed: int) -> None:
        self._make = make
        self._seed = seed
        self._number = -1
        self._sampler: BaseSampler = make(seed)

    def _inner(self, trial: FrozenTrial) -> BaseSampler:
        if trial.number != self._number:  # trials run one at a time in a process
            # modulo 2**32, NumPy's seed range: a study of seed 2**32 - 1 could not be resumed
            self._number, self._sampler = trial.number, self._make((self._seed + trial.number) % 2**32)
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
        self._sampler.reseed_rng()
