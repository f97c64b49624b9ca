"""report.html as a browser shows it: a study of the wide quickstart space (19 choices) with
synthetic accuracies (nothing trains), rendered by headless Chromium to a PNG to look at.

    python bench/report_page.py [--out DIR] [--trials 24]

Checks the page's layout at 15+ dimensions: the answer, the architecture, the settings, the
plots' titles and captions, the leaderboard's choice columns. The values are made up (accuracy
rising with log FLOPs plus noise, per-image records drawn to match), and the page says so in its
title. Needs the Debian package `chromium`; without it the report is written and the screenshot
skipped with a line saying so.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import optuna
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox.model.flops import count  # noqa: E402
from sandbox.paired import pack  # noqa: E402
from sandbox.search.objective import suggest_with  # noqa: E402
from sandbox.search.record import (  # noqa: E402
    CORRECT_VAL,
    EPOCHS_TRAINED,
    FLOPS,
    OVER_BUDGET,
    PARAMS,
    SECONDS,
    SEED,
    SPEC,
    TEST_ACCURACY,
    correct,
)
from sandbox.search.report import record_settings, write_report  # noqa: E402
from sandbox.search.storage import BUDGET_ATTR  # noqa: E402
from sandbox.spec.load import read_yaml, validate  # noqa: E402
from sandbox.spec.primitives import sample  # noqa: E402

SPACE = ROOT / "bench" / "spaces" / "quickstart_wide.yaml"
BUDGET = 16_000_000
IMAGES = 1140  # the bundled sample's carved validation split
EPOCHS = 16


def records(accuracy: float, rng: np.random.Generator, hard: np.ndarray) -> str:
    """Per-image bits with about `accuracy` right, easy images first, as real networks share errors."""
    score = hard + rng.normal(0, 0.6, len(hard))
    return pack(score < np.quantile(score, accuracy))


def build(run_dir: Path, trials: int, seed: int) -> optuna.Study:
    space = read_yaml(SPACE)
    study = optuna.create_study(
        study_name="quickstart-wide (synthetic values)",
        storage=f"sqlite:///{run_dir / 'study.db'}",
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=seed),
    )
    study.set_user_attr(BUDGET_ATTR, BUDGET)
    rng = np.random.default_rng(seed)
    hard = rng.normal(size=IMAGES)
    for _ in range(trials):
        trial = study.ask()
        raw = sample(space, suggest_with(trial))
        raw.pop("search", None)
        counts = count(validate(raw, base=SPACE.parent))
        trial.set_user_attr(SPEC, yaml.safe_dump(raw, sort_keys=False))
        trial.set_user_attr(FLOPS, counts.flops)
        trial.set_user_attr(PARAMS, counts.params)
        if counts.flops > BUDGET:
            trial.set_user_attr(OVER_BUDGET, True)
            study.tell(trial, 0.0)
            continue
        val = 0.86 + 0.012 * math.log2(counts.flops / 2e6) + rng.normal(0, 0.003)
        for epoch in range(1, EPOCHS + 1):
            trial.report(val - 0.3 * math.exp(-epoch / 3), epoch)
        for key, value in {
            EPOCHS_TRAINED: EPOCHS,
            SECONDS: counts.flops / 1e5,
            SEED: 0,
            TEST_ACCURACY: val - 0.004,
            correct("val"): records(val, rng, hard),
            correct("test"): records(val - 0.004, rng, hard),
        }.items():
            trial.set_user_attr(key, value)
        study.tell(trial, val)
    return study


def reference(run_dir: Path, study: optuna.Study, seed: int) -> None:
    """compare/comparison.json as the search writes it, for a reference at 13.6 MFLOPs."""
    best = max((t for t in study.trials if CORRECT_VAL in t.user_attrs), key=lambda t: t.values[0])
    rng = np.random.default_rng(seed + 1)
    hard = np.random.default_rng(seed).normal(size=IMAGES)
    from sandbox.search.reference import Measured, write_comparison

    mine = Measured(f"best (trial {best.number})", best.user_attrs[FLOPS], (0,), (best.values[0],),
                    (best.user_attrs[TEST_ACCURACY],),
                    ({"val": best.user_attrs[CORRECT_VAL], "test": best.user_attrs[correct("test")]},))  # fmt: skip
    theirs = Measured("reference", 13_600_000, (0,), (0.884,), (0.881,),
                      ({"val": records(0.884, rng, hard), "test": records(0.881, rng, hard)},))  # fmt: skip
    write_comparison(mine, theirs, run_dir)


def screenshot(page: Path, png: Path) -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return "skipped: no chromium (apt-get install -y chromium)"
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--screenshot={png}", "--window-size=1400,7600", page.as_uri()]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return str(png)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="where to leave report.html and report.png (default: a temp dir)")
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run_dir = (args.out or Path(tempfile.mkdtemp(prefix="report-page-"))).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "study.db").unlink(missing_ok=True)
    study = build(run_dir, args.trials, args.seed)
    reference(run_dir, study, args.seed)
    settings = {"spec": str(SPACE.relative_to(ROOT)), "budget": f"{BUDGET / 1e6:.2f} MFLOPs", "sampler": "random",
                "pruner": "none", "epochs": EPOCHS, "seed": args.seed, "data": "fashion-mnist-sample",
                "device": "none (synthetic values)"}  # fmt: skip
    record_settings(study, settings)
    outcome = write_report(study, run_dir)
    print(json.dumps(outcome, indent=2))
    print(f"report: {run_dir / 'report.html'}")
    print(f"screenshot: {screenshot(run_dir / 'report.html', run_dir / 'report.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
