"""The one-shot strategy in a search: train the supernet, screen subnets in the budget band with
inherited weights, score the screen's best in full, and enqueue the best `top_k` in the study, whose
workers then train them as ordinary trials (so the leaderboard, report.html, the reference
comparison and export see them as any trial). Runs once per study: a study that already holds
trials goes on as it is (resume), and a search killed while the supernet trained goes on from its
last epoch (RUN_DIR/supernet.pt).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import optuna
import torch

from sandbox.errors import SandboxError
from sandbox.model.flops import PartCounts
from sandbox.runs import atomic_write
from sandbox.search.ceiling import DRAWS_PER_TRIAL  # the same cap on draws as the default search
from sandbox.search.oneshot.explore import Candidate, explore
from sandbox.search.oneshot.score import Scorer
from sandbox.search.oneshot.supernet import Supernet
from sandbox.search.oneshot.train import Subnets, load_data, train_supernet
from sandbox.search.progress import duration
from sandbox.search.run import SearchRun
from sandbox.spec.one_shot import OneShotConfig, one_shot_config
from sandbox.train.device import resolve_device

RESULTS = "one_shot.json"  # in the run directory: every scored subnet, the supernet's times
CHECKPOINT = "supernet.pt"  # in the run directory: the supernet after its last epoch


def one_shot_stage(search: SearchRun, study: optuna.Study, say: Callable[[str], None] = print) -> SearchRun:
    """The search with the one-shot stage done when its strategy asks for it: the top k enqueued
    and `trials` set so that the workers train those and no others."""
    settings = one_shot_config(search.space.get("search") or {})
    if settings is None:
        return search
    stored = len(study.get_trials(deepcopy=False))
    if stored:
        say(f"one-shot: the study holds {stored} trials already; the supernet is not trained again")
        return search
    picks = pick(search, settings, say)
    for params in picks:
        study.enqueue_trial(params)
    return replace(search, config=replace(search.config, trials=len(picks)))


def pick(search: SearchRun, settings: OneShotConfig, say: Callable[[str], None]) -> list[dict[str, Any]]:
    """The params of the `top_k` subnets in the band by supernet score (writes RESULTS)."""
    torch.manual_seed(search.config.seed)
    net = Supernet(search.space, search.base)  # a space it cannot hold fails here, before any training
    device = resolve_device(search.device)
    data, recipe = load_data(net, device, search.data_dir)
    net.to(device)
    config = recipe.with_overrides(epochs=settings.epochs, seed=search.config.seed)
    say(f"one-shot: training the supernet for {config.epochs} epochs ({settings.sampling} sampling)")
    search.run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = search.run_dir / CHECKPOINT  # a search killed while the supernet trained resumes it
    trained = train_supernet(net, data, config, sampling=settings.sampling, say=say, checkpoint=checkpoint)
    scorer = Scorer(net, data, settings, batch=config.batch_size, seed=config.seed, channels_last=config.channels_last)
    subnets, counter = Subnets(net), PartCounts()
    began = time.perf_counter()
    progress = ScreenProgress(settings.candidates, began, say)

    def screen(params: Mapping[str, Any]) -> tuple[int, float | None]:
        subnet = subnets(params)
        flops = counter(subnet.spec).flops
        if not search.config.in_band(flops):
            return flops, None
        value = scorer.screen(subnet)
        progress.screened()
        return flops, value

    screened = explore(search.space, search.config, settings, screen)
    if not screened:
        raise SandboxError(
            f"one-shot: none of {settings.candidates * DRAWS_PER_TRIAL:,} subnets drawn fell in the FLOP band; "
            "widen search.budget or its floor"
        )
    screen_seconds = time.perf_counter() - began
    ranked = finals(screened, scorer, subnets, settings.finalists)
    seconds = time.perf_counter() - began
    say(f"one-shot: supernet trained in {trained['seconds']:.0f} s; {len(ranked)} subnets in the band screened in "
        f"{screen_seconds:.0f} s, the best {min(settings.finalists, len(ranked))} scored in full in "
        f"{seconds - screen_seconds:.0f} s; the best {settings.top_k} go on as trials")  # fmt: skip
    record = {"train_seconds": trained["seconds"], "score_seconds": seconds, "screen_seconds": screen_seconds,
              "screen_images": len(scorer.screen_split), "history": trained["history"], "seed": config.seed,
              "scored": ranked}  # fmt: skip
    atomic_write(search.run_dir / RESULTS, lambda temporary: temporary.write_text(json.dumps(record, indent=1)))
    return [c["params"] for c in ranked[: settings.top_k]]


def finals(screened: list[Candidate], scorer: Scorer, subnets: Subnets, finalists: int) -> list[Candidate]:
    """Every screened candidate, best first: the `finalists` best of the screen by their full `score`,
    then the rest by their `screen`. Without a cheaper screen, the screen is the full score."""
    by_screen = sorted(screened, key=lambda c: -c["screen"])
    if not scorer.screens:
        return [{**c, "score": c["screen"]} for c in by_screen]
    final = [{**c, "score": scorer.score(subnets(c["params"]))} for c in by_screen[:finalists]]
    return sorted(final, key=lambda c: -c["score"]) + by_screen[finalists:]


class ScreenProgress:
    """A line after every tenth of the candidates screened, with the time the screen has left."""

    def __init__(self, total: int, began: float, say: Callable[[str], None]) -> None:
        self.total, self.began, self.say, self.done = total, began, say, 0
        self.every = max(1, total // 10)

    def screened(self) -> None:
        self.done += 1
        if self.done % self.every == 0 and self.done < self.total:
            left = (time.perf_counter() - self.began) / self.done * (self.total - self.done)
            self.say(f"one-shot: {self.done:,} of {self.total:,} subnets screened, about {duration(left)} left")
