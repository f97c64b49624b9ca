"""Where the repository and its shipped specs are, for tests at any depth of tests/."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEARCH_SPACES = REPO / "search_spaces"
