"""The Optuna sampler and pruner a spec's `search:` section names (`sandbox.spec.search.SearchConfig`)."""

from __future__ import annotations

import warnings

import optuna

from sandbox.spec.search import SearchConfig


def make_sampler(config: SearchConfig, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """The configured sampler, seeded with `seed` (default: the study's; each trial's is
    `sandbox.search.sampler.TrialSeeded`'s). TPE lies about running trials whatever
    `workers` is: another machine may join the study at any time, and alone it changes nothing."""
    seed = config.seed if seed is None else seed
    if config.sampler == "tpe":
        # group: a choice of whole branches or stages makes the space conditional, and each group
        # of parameters that appear together is modelled jointly instead of falling back to random
        with warnings.catch_warnings():  # `group` is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                seed=seed,
                n_startup_trials=config.startup_trials or 10,
                multivariate=True,
                group=True,
                constant_liar=True,
            )
    if config.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=config.population)
    if config.sampler == "gp":
        # A choice of whole branches or stages makes the space conditional: parameters that not
        # every candidate has are sampled at random, as intended, so Optuna's warning is noise.
        return optuna.samplers.GPSampler(
            seed=seed, n_startup_trials=config.startup_trials or 5, warn_independent_sampling=False
        )
    return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(config: SearchConfig) -> optuna.pruners.BasePruner:
    """The configured pruner; a trial reports its validation accuracy at step = epochs trained."""
    if config.multi_objective:  # Optuna prunes single-objective studies only
        return optuna.pruners.NopPruner()
    if config.pruner == "median":
        # n_min_trials: over-budget trials end COMPLETE without a curve, so Optuna's startup
        # count alone would let the first trained curve be "the median" of everything after it.
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2, n_min_trials=4)
    if config.pruner == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=config.first_rung, reduction_factor=config.reduction_factor
        )
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=config.first_rung, max_resource="auto", reduction_factor=config.reduction_factor
        )
    return optuna.pruners.NopPruner()
