"""`sandbox dashboard RUN_DIR`: optuna-dashboard over a search's study, read as results.

Draws never trained (over budget, under the floor, invalid) and repeats show as Pruned with no
value instead of Complete with the stand-in the samplers need; attributes read as words
(`sandbox.search.dashboard`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sandbox.errors import SandboxError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("dashboard", help="serve optuna-dashboard over a search's study, stand-ins hidden")
    parser.add_argument("run_dir", type=Path, help="the search's run directory")
    parser.add_argument("--storage", help="Optuna storage URL (default: sqlite:///RUN_DIR/study.db)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        import optuna_dashboard  # type: ignore[import-untyped]
    except ImportError as err:
        raise SandboxError('optuna-dashboard is not installed: pip install -e ".[dev]" (or optuna-dashboard)') from err
    from sandbox.search.dashboard import ReadableStorage
    from sandbox.search.storage import open_storage

    db = args.run_dir / "study.db"
    if args.storage is None and not db.is_file():
        raise SandboxError(f"{args.run_dir} holds no study.db: is it a search run directory? (or pass --storage)")
    storage = open_storage(args.storage or f"sqlite:///{db.resolve()}")
    print(f"optuna-dashboard on http://{args.host}:{args.port} (Ctrl-C stops it)", flush=True)
    optuna_dashboard.run_server(ReadableStorage(storage), host=args.host, port=args.port)
    return 0
