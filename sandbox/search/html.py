"""RUN_DIR/report.html: one self-contained page (PNGs embedded as base64) that answers the search.

Top to bottom: the pick against the reference network (paired, with intervals), the pick's
architecture, the settings, the plots with titles and captions, the leaderboard. It opens from disk
in any browser, with no server, and survives being copied or mailed alone.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from optuna.trial import FrozenTrial

from sandbox.paired import LEVEL
from sandbox.search.record import FLOPS, TEST_ACCURACY
from sandbox.search.results import COLUMNS, TIE_RULE, choices, is_result, ranked, rows

_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 80em; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.3em 0 1.5em; }
table { border-collapse: collapse; font-size: 0.85em; margin-bottom: 1em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; white-space: nowrap; }
div.wide { overflow-x: auto; }
th[title] { text-decoration: underline dotted; cursor: help; }
td.text, th.text { text-align: left; }
tr.result { background: #eef5ff; }
tr.tied { background: #dcebff; font-weight: bold; }
tr.grey { color: #999; }
p.caption { color: #555; margin: 0; }
pre { font-size: 0.8em; background: #f7f7f7; padding: 0.5em; overflow-x: auto; }
"""


@dataclass(frozen=True)
class Figures:
    """The plots: file name → (title, caption), the drawn PNGs, and why any was left out."""

    titles: Mapping[str, tuple[str, str]]
    images: Mapping[str, bytes]
    skipped: Mapping[str, str]


def page(
    title: str,
    trials: Sequence[FrozenTrial],
    settings: Mapping[str, Any],
    comparison: Mapping[str, Any] | None,
    figures: Figures,
    names: Mapping[str, str],
    architecture: str = "",
) -> str:
    """The report page. `names`: each searched YAML path → its short name; `architecture`: the pick's
    table and diagram as HTML (`sandbox.search.architecture`)."""
    parts = [f"<h1>{escape(title)}</h1>", "<h2>The answer</h2>", answer(trials, comparison)]
    if architecture:
        parts += ["<h2>The pick's architecture</h2>", architecture]
    parts += ["<h2>Settings</h2>", _pairs(settings)]
    for name, (heading, caption) in figures.titles.items():
        if name in figures.images:
            data = base64.b64encode(figures.images[name]).decode("ascii")
            parts.append(f'<h2>{escape(heading)}</h2>\n<p class="caption">{escape(caption)}</p>')
            parts.append(f'<img alt="{escape(heading)}" src="data:image/png;base64,{data}">')
        elif name in figures.skipped:
            parts.append(f"<h2>{escape(heading)}</h2>\n<p>{escape(figures.skipped[name])}</p>")
    parts += ["<h2>Leaderboard</h2>", f"<p>{escape(TIE_RULE)} (bold rows).</p>", leaderboard(trials, names)]
    shortened = {short: full for full, short in names.items() if short != full}
    if shortened:
        parts += ["<h3>Choice names</h3>", _table(["short", "YAML path"], [[s, f] for s, f in shortened.items()])]
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def answer(trials: Sequence[FrozenTrial], comparison: Mapping[str, Any] | None) -> str:
    """The pick and, when the search compared it, the reference network, with the paired differences."""
    results = ranked(trials)
    if not results:
        return "<p>No candidate was trained to the end.</p>"
    best = results[0]
    tied = sum(1 for _, r in rows(trials) if r["vs_best"].startswith("tied"))
    pick = (
        f"<p>The pick: trial {best.number}, the best validation accuracy of {len(results)} trained to the end"
        f"{f'; {tied} more are statistically tied with it (McNemar, {LEVEL:.0%} level)' if tied else ''}.</p>"
    )
    if comparison is None:
        attrs = best.user_attrs
        line = [f"best (trial {best.number})", _mflops(attrs.get(FLOPS)), _mean([best.values[0]])]
        table = _table(["", "MFLOPs", "val acc", "test acc"], [[*line, _mean([attrs.get(TEST_ACCURACY)])]])
        return pick + table + "<p>No reference network was compared (set <code>search.reference</code>).</p>"
    measured = [comparison["best"], comparison["reference"]]
    lines = [[str(m["name"]), _mflops(m["flops"]), _mean(m["val"]), _mean(m["test"])] for m in measured]
    paired = comparison.get("paired") or {}
    differences = [_paired(paired.get(split)) for split in ("val", "test")]
    lines.append(["best − reference, paired (95% interval)", "", *differences])
    seeds = len(comparison["reference"].get("seeds") or [])
    note = (
        f"<p>Both trained with the same recipe and epochs, {seeds} seed{'s' * (seeds > 1)}"
        f"{', values are means' if seeds > 1 else ''}. The differences are paired on the same images (the images "
        "one got right and the other wrong), with a normal 95% interval and McNemar's exact p.</p>"
    )
    return pick + _table(["", "MFLOPs", "val acc", "test acc"], lines) + note


def _mflops(flops: Any) -> str:
    return f"{flops / 1e6:.2f}" if isinstance(flops, (int, float)) else ""


def _mean(values: Sequence[Any]) -> str:
    """The mean of the known values, in percent ('' when none is known)."""
    known = [v for v in values if isinstance(v, (int, float))]
    return f"{100 * sum(known) / len(known):.2f}%" if known else ""


def _paired(found: Mapping[str, Any] | None) -> str:
    if not found:
        return "no per-image record"
    return f"{found['difference']:+.2f} points ({found['low']:+.2f} to {found['high']:+.2f}), p {found['p_value']:.2g}"


def _table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    first = '<td class="text">'
    body = "".join(
        "<tr>" + "".join(f"{first if i == 0 else '<td>'}{escape(cell)}</td>" for i, cell in enumerate(line)) + "</tr>"
        for line in lines
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _pairs(settings: Mapping[str, Any]) -> str:
    lines = "".join(
        f'<tr><th class="text">{escape(str(key))}</th><td class="text">{escape(_text(value))}</td></tr>'
        for key, value in settings.items()
    )
    return f"<table>{lines}</table>"


def _text(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_text(v)}" for k, v in value.items())
    return str(value)


def leaderboard(trials: Sequence[FrozenTrial], names: Mapping[str, str]) -> str:
    """The leaderboard.csv rows as a table, a column per searched choice (short name, full path on hover)."""
    paths = choices(trials)
    header = "".join(f"<th>{escape(c)}</th>" for c in COLUMNS)
    header += "".join(f'<th title="{escape(p)}">{escape(names.get(p, p))}</th>' for p in paths)
    lines = ['<div class="wide"><table>', f"<tr>{header}</tr>"]
    for trial, r in rows(trials):
        kind = "grey" if not r["epochs"] else "other"
        if is_result(trial):
            kind = "tied" if r["vs_best"] == "best" or r["vs_best"].startswith("tied") else "result"
        cells = "".join(_cell(column, value) for column, value in r.items())
        lines.append(f'<tr id="trial-{trial.number}" class="{kind}">{cells}</tr>')
    lines.append("</table></div>")
    return "\n".join(lines)


def _cell(column: str, value: Any) -> str:
    if value is None:
        text = ""
    elif column in ("val_accuracy", "test_accuracy"):
        text = f"{100 * value:.2f}%"
    elif column == "flops":
        text = f"{value / 1e6:.2f} M"
    elif column == "seconds":
        text = f"{value:.1f}"
    elif isinstance(value, int) and not isinstance(value, bool):
        text = f"{value:,}" if column == "params" else str(value)
    else:
        text = str(value)
    return f'<td class="text">{escape(text)}</td>' if column in ("note", "vs_best") else f"<td>{escape(text)}</td>"
