"""`python -m sandbox` runs the command-line interface."""

from sandbox.cli import main

raise SystemExit(main())
