"""RUN_DIR/report.html: one self-contained page (PNGs embedded as base64) with the plots and the leaderboard.

It opens from disk in any browser, with no server, and survives being copied or mailed alone.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from optuna.trial import FrozenTrial

from sandbox.search.results import COLUMNS, is_result, ranked, row

_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0 1.5em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
td.note { text-align: left; }
tr.result { background: #eef5ff; }
tr.grey { color: #999; }
"""


def page(
    title: str,
    summary: str,
    images: Mapping[str, bytes],
    skipped: Mapping[str, str],
    trials: Sequence[FrozenTrial],
    names: Mapping[str, str],
) -> str:
    """The report page: summary, each plot (or why it was skipped), short names, the leaderboard."""
    parts = [f"<h1>{escape(title)}</h1>", f"<p>{escape(summary)}</p>"]
    for name, png in images.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(f'<h2>{escape(name)}</h2>\n<img alt="{escape(name)}" src="data:image/png;base64,{data}">')
    parts += [f"<p>{escape(name)}: {escape(why)}</p>" for name, why in skipped.items()]
    if names:
        parts.append("<h2>Parameter names in the plots</h2>\n<table><tr><th>short</th><th>YAML path</th></tr>")
        parts += [f"<tr><td>{escape(short)}</td><td>{escape(full)}</td></tr>" for short, full in sorted(names.items())]
        parts.append("</table>")
    parts += ["<h2>Leaderboard</h2>", leaderboard(trials)]
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def leaderboard(trials: Sequence[FrozenTrial]) -> str:
    """The leaderboard.csv rows as a table: results by rank, then the rest by number."""
    results = ranked(trials)
    rest = sorted((t for t in trials if not is_result(t)), key=lambda t: t.number)
    lines = ["<table>", "<tr>" + "".join(f"<th>{escape(c)}</th>" for c in COLUMNS) + "</tr>"]
    for trial in [*results, *rest]:
        kind = "result" if is_result(trial) else "grey" if not row(trial)["epochs"] else "other"
        cells = "".join(_cell(column, value) for column, value in row(trial).items())
        lines.append(f'<tr id="trial-{trial.number}" class="{kind}">{cells}</tr>')
    lines.append("</table>")
    return "\n".join(lines)


def _cell(column: str, value: Any) -> str:
    if value is None:
        text = ""
    elif column in ("val_accuracy", "test_accuracy"):
        text = f"{value:.4f}"
    elif column == "flops":
        text = f"{value / 1e6:.2f} M"
    elif column == "seconds":
        text = f"{value:.1f}"
    elif isinstance(value, int):
        text = f"{value:,}" if column == "params" else str(value)
    else:
        text = str(value)
    return f'<td class="note">{escape(text)}</td>' if column == "note" else f"<td>{escape(text)}</td>"
