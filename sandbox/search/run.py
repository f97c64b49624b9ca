"""What a search run is: the study's inputs, shared by the parent and every worker process.

A study holds the trials of one search: one network space trained with one recipe. `network()`,
`recipe()` and `plugin_code()` are what the study stores of them when it is created, so a rerun or
a joining process that would mix other networks, another recipe or edited plugin code into it is
refused (`sandbox.search.storage`).
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from sandbox.errors import SandboxError
from sandbox.spec.primitives import NOT_SEARCHED, Suggest, sample
from sandbox.spec.recipe import TrainConfig
from sandbox.spec.search import SearchConfig

LAYOUT = 2  # what a study and its run directory hold; 1 (no layout stored) kept no recipe, so it is refused
RESULTS = ("trials", "best", "best.yaml", "leaderboard.csv", "report.html")  # what a search leaves in its run directory
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 60
OPEN_ATTEMPTS = 5  # tries to open a storage that other processes are creating at the same moment
THIS_WORKER = f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class SearchRun:
    """Everything a worker needs; picklable, so worker processes get it whole."""

    space: dict[str, Any]
    base: Path
    name: str
    config: SearchConfig
    run_dir: Path
    storage_url: str
    device: str = "auto"
    data_dir: Path | None = None
    plugin_files: tuple[Path, ...] = ()  # from --plugin, absolute
    reference: Path | None = None  # search.reference, resolved and checked before any training
    threads: int | None = None  # --threads: CPU threads per worker; None = each worker's share of the cores

    def concrete_spec(self, suggest: Suggest, number: int) -> dict[str, Any]:
        """Trial `number`'s concrete spec, its values from `suggest`: absolute plugin paths (`--plugin`
        files included), no `search:` section."""
        raw = sample(self.space, suggest)
        raw.pop("search", None)
        raw["name"] = f"{self.name}-trial{number}"
        plugins = [str((self.base / p).resolve()) for p in raw.get("plugins") or []]
        plugins += [str(p) for p in self.plugin_files if str(p) not in plugins]
        if plugins:
            raw["plugins"] = plugins
        return raw

    def trial_dir(self, number: int) -> Path:
        return self.run_dir / "trials" / f"{number:04d}"

    def network(self) -> dict[str, Any]:
        """The space's network: everything but its name, plugin files, `search:`, `train:` and `data:`."""
        return {key: value for key, value in self.space.items() if key not in (*NOT_SEARCHED, "train", "data")}

    def recipe(self) -> dict[str, Any]:
        """What decides a trial's result besides its network: `train:` and `data:` as the space spells
        them (ranges included), and the epochs and seed each trial trains with (`train.epochs` and
        `train.seed` give way to those). Where the data lives and the device are left out: machines
        that join one study may differ in both."""
        train = dict(self.space.get("train") or {})
        epochs = self.config.trial_epochs(train.pop("epochs", TrainConfig.epochs))
        train.pop("seed", None)
        data = {key: value for key, value in (self.space.get("data") or {}).items() if key != "root"}
        return {"train": train, "data": data, "epochs": epochs, "seed": self.config.seed}

    def plugin_code(self) -> dict[str, str]:
        """A hash of each plugin file's content, by the name the spec gives it (a `--plugin` file by its
        file name, so that machines with other paths can join): a plugin whose code changed builds
        other networks under the same parameters, so its old trials' accuracies no longer answer."""
        files = {str(spelled): self.base / spelled for spelled in self.space.get("plugins") or []}
        files.update({path.name: path for path in self.plugin_files})
        hashes = {}
        for name, path in files.items():
            try:
                hashes[name] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            except OSError as err:
                raise SandboxError(f"cannot read the plugin file {path}: {err.strerror or err}") from err
        return hashes
