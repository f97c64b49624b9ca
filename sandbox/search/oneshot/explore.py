"""Which subnets a trained supernet screens: random draws in the FLOP band, or TPE learning from the screens.

Screening a subnet costs a batch-norm recalibration and a pass over some validation images, counting
its FLOPs almost nothing, so both ways count first and screen only candidates inside the band.
`random` draws uniformly, as the default search does. `tpe` runs an in-memory Optuna study whose
objective is the screen, with the band as a constraint (a draw outside it is a violated constraint,
never screened), so its proposals move towards the subnets the supernet rates best. Both stop at
`candidates` distinct subnets screened, or after `DRAWS_PER_TRIAL` draws per candidate.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import optuna

from sandbox.errors import SpecError
from sandbox.search.ceiling import DRAWS_PER_TRIAL  # the same cap on draws as the default search
from sandbox.search.objective import suggest_with
from sandbox.space.bounds import random_params
from sandbox.spec.one_shot import OneShotConfig
from sandbox.spec.primitives import recording, sample
from sandbox.spec.search import SearchConfig

Candidate = dict[str, Any]  # {"params": ..., "flops": ..., "screen": ...} (and a finalist's "score")
Evaluate = Callable[[Mapping[str, Any]], tuple[int, float | None]]  # params → FLOPs, screen (None: outside the band)
OUTSIDE = "outside_band"  # the constraint TPE reads: FLOPs outside the band (0 inside)


def explore(
    space: Mapping[str, Any], config: SearchConfig, settings: OneShotConfig, evaluate: Evaluate
) -> list[Candidate]:
    """The distinct subnets screened, in the order they were screened."""
    if settings.sampler == "tpe":
        return _by_tpe(space, config, settings, evaluate)
    return _at_random(space, config, settings, evaluate)


def _key(params: Mapping[str, Any]) -> str:
    return repr(sorted(params.items()))


def _at_random(
    space: Mapping[str, Any], config: SearchConfig, settings: OneShotConfig, evaluate: Evaluate
) -> list[Candidate]:
    rng = random.Random(config.seed)
    scored: dict[str, Candidate] = {}
    for _ in range(settings.candidates * DRAWS_PER_TRIAL):
        if len(scored) == settings.candidates:
            break
        params = random_params(space, rng)
        if _key(params) in scored:
            continue
        flops, value = _evaluated(evaluate, params)
        if value is not None:
            scored[_key(params)] = {"params": params, "flops": flops, "screen": value}
    return list(scored.values())


def _by_tpe(
    space: Mapping[str, Any], config: SearchConfig, settings: OneShotConfig, evaluate: Evaluate
) -> list[Candidate]:
    scored: dict[str, Candidate] = {}
    with warnings.catch_warnings():  # `group` is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=config.seed, multivariate=True, group=True)
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        params: dict[str, Any] = {}
        sample(space, recording(suggest_with(trial), params))
        known = scored.get(_key(params))
        if known is not None:  # a repeat: its screen again, no second screening
            trial.set_constraint(OUTSIDE, 0.0)
            return float(known["screen"])
        flops, value = _evaluated(evaluate, params)
        trial.set_constraint(OUTSIDE, 0.0 if value is not None else _outside(config, flops))
        if value is None:
            return 0.0
        scored[_key(params)] = {"params": params, "flops": flops, "screen": value}
        return value

    def enough(study: optuna.Study, _: Any) -> None:
        if len(scored) >= settings.candidates:
            study.stop()

    study.optimize(objective, n_trials=settings.candidates * DRAWS_PER_TRIAL, callbacks=[enough])
    return list(scored.values())


def _evaluated(evaluate: Evaluate, params: Mapping[str, Any]) -> tuple[int, float | None]:
    try:
        return evaluate(params)
    except SpecError:  # no network (every branch of a module dropped): as far outside the band as can be
        return -1, None


def _outside(config: SearchConfig, flops: int) -> float:
    """How far `flops` is outside the band (> 0); an invalid draw (-1) is farthest."""
    if flops < 0:
        return 1e12
    over = flops - config.budget if config.budget is not None else 0
    under = (config.floor_flops or 0) - flops
    return float(max(over, under, 1))
