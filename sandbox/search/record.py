"""What a search records on each trial: the keys of an Optuna trial's `user_attrs`, in one place.

This docstring is the written schema; every reader and writer (the objective, results, report,
plots, progress, the reference comparison, bench/) uses the names below, never the strings.

Every trial
    WORKER            str    `host:pid` of the process that ran it (a crashed one's trials are failed on resume)
    SPEC              str    its concrete spec, YAML (name, plugins made absolute, no `search:`); not
                             stored for a draw outside the FLOP band, which its params and FLOPS describe
Drawn but never trained (the trial ends COMPLETE with a stand-in value and a violated constraint)
    INVALID           str    why the drawn spec is no network (the SpecError's line)
    OVER_BUDGET       bool   its FLOPs are over `search.budget`
    UNDER_FLOOR       bool   its FLOPs are under the budget's floor
    DUPLICATE_OF      int    the trial that trained this very candidate; its results are copied here
Drawn inside the band by random sampling (`sandbox.search.band`), which makes no trial of a draw outside it
    DRAWS             int    the random draws it took to find this candidate (itself included)
Counted before training (every valid draw)
    FLOPS             int    forward FLOPs per image
    PARAMS            int    parameters
Trained (set as training goes, and from the run's metrics.json at its end)
    EPOCHS_TRAINED    int    epochs trained so far (rungs' complete schedules included)
    SEED              int    the training seed
    TEST_ACCURACY     float  on the test split
    SECONDS           float  training time
    IMAGES_PER_SECOND float  training images per second
    RUN_DIR           str    the trial's run directory (on the machine that trained it)
    correct(split)    str    `correct_val`, `correct_test`: which images it got right, packed (`sandbox.paired`)
Failed
    ERROR             str    the exception, in one line
    DEVICE_LOST       bool   the GPU was lost: the worker ends and a fresh process retries the trial
"""

from __future__ import annotations

WORKER = "worker"
SPEC = "spec"
INVALID = "invalid"
OVER_BUDGET = "over_budget"
UNDER_FLOOR = "under_floor"
DUPLICATE_OF = "duplicate_of"
DRAWS = "draws"
FLOPS = "flops"
PARAMS = "params"
EPOCHS_TRAINED = "epochs_trained"
SEED = "seed"
TEST_ACCURACY = "test_accuracy"
SECONDS = "seconds"
IMAGES_PER_SECOND = "train_images_per_second"
RUN_DIR = "run_dir"
ERROR = "error"
DEVICE_LOST = "device_lost"

NOT_TRAINED = (OVER_BUDGET, UNDER_FLOOR)  # draws never trained for their FLOPs (true when set)
FREE_DRAWS = (*NOT_TRAINED, INVALID, DUPLICATE_OF)  # draws that trained nothing (present when set)
FROM_METRICS = (SEED, TEST_ACCURACY, SECONDS, IMAGES_PER_SECOND)  # copied from the run's metrics.json
COPIED = (TEST_ACCURACY, SECONDS, IMAGES_PER_SECOND, RUN_DIR)  # what a repeat copies from the trial it repeats


def correct(split: str) -> str:
    """The key of a trained trial's per-image record on `split` (`val`, `test`)."""
    return f"correct_{split}"


CORRECT_VAL = correct("val")
