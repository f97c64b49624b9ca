"""What a search run is: the study's inputs, shared by the parent and every worker process."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from sandbox.search.config import SearchConfig

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 60
OPEN_ATTEMPTS = 5  # tries to open a storage that other processes are creating at the same moment
WORKER = f"{socket.gethostname()}:{os.getpid()}"


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

    def trial_dir(self, number: int) -> Path:
        return self.run_dir / "trials" / f"{number:04d}"
