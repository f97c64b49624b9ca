"""The pick's architecture for report.html: the per-module table `sandbox show` prints, and an SVG
diagram with a row per module and a box per branch, so the network reads at a glance.

It validates and counts the trial's concrete spec, which imports torch: only the report calls it.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

import yaml

from sandbox.model.flops import count, format_table
from sandbox.spec.load import validate
from sandbox.spec.schema import Branch, Call, ModuleSpec, Spec, branch_label

ROW, BOX, GAP, LABEL = 46, 150, 8, 110  # pixels: row height, branch box width, gap, module-name column


def architecture_html(spec_yaml: str, base: Path) -> str:
    """The table and the diagram of a trial's concrete spec (its `spec` user attribute)."""
    spec = validate(yaml.safe_load(spec_yaml), base=base)
    counts = count(spec)
    shapes = {m.name: "x".join(map(str, m.shape)) for m in counts.modules}
    return f"<pre>{escape(format_table(spec, counts))}</pre>\n{diagram(spec, shapes)}"


def diagram(spec: Spec, shapes: dict[str, str]) -> str:
    """Rows top to bottom as data flows: the stem, each stage's downsample and modules (their branches
    side by side, concatenated or added back), the head; each row ends with its output shape."""
    lines: list[tuple[str, list[str], str]] = [("stem", [_call_text(spec.stem)], shapes.get("stem", ""))]
    for stage in spec.stages:
        if stage.downsample is not None:
            lines.append(("downsample", [_call_text(stage.downsample)], ""))
        for module in stage.modules:
            lines.append((module.name, [_branch_text(b) for b in module.branches], _joined(module, shapes)))
    lines.append(("head", [f"pool, {'linear' if spec.raw.get('head', {}).get('fc', True) else '1x1 conv'}"], ""))
    widest = max(len(boxes) for _, boxes, _ in lines)
    width = LABEL + widest * (BOX + GAP) + 170
    size = f'width="{width}" height="{len(lines) * ROW + 10}"'
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" {size} font-family="sans-serif" font-size="11" role="img">']
    for row, (name, boxes, shape) in enumerate(lines):
        y = row * ROW + 5
        svg.append(f'<text x="0" y="{y + 22}" font-weight="bold">{escape(name)}</text>')
        for column, text in enumerate(boxes):
            x = LABEL + column * (BOX + GAP)
            kind, _, detail = text.partition("\n")
            svg.append(f'<rect x="{x}" y="{y}" width="{BOX}" height="{ROW - 12}" rx="4" fill="{_colour(kind)}" '
                       'stroke="#666"/>')  # fmt: skip
            svg.append(f'<text x="{x + 6}" y="{y + 14}">{escape(kind[:24])}</text>')
            svg.append(f'<text x="{x + 6}" y="{y + 28}" fill="#444">{escape(detail[:26])}</text>')
        if shape:
            x = LABEL + len(boxes) * (BOX + GAP)
            svg.append(f'<text x="{x}" y="{y + 22}" fill="#444">→ {escape(shape)}</text>')
    svg.append("</svg>")
    return "\n".join(svg)


def _joined(module: ModuleSpec, shapes: dict[str, str]) -> str:
    how = "concat" if module.combine == "concat" else f"residual x{module.scale:g}"
    return f"{how} {shapes.get(module.name, '')}".strip()


def _call_text(call: Call) -> str:
    widths = ", ".join(f"{key} {value}" for key, value in call.params.items() if key in ("out", "reduce", "kernel"))
    return f"{call.type}\n{widths}"


def _branch_text(branch: Branch) -> str:
    return _call_text(branch) if isinstance(branch, Call) else f"{branch_label(branch)}\nsplit"


def _colour(kind: str) -> str:
    palette: dict[str, Any] = {"conv1x1": "#dbe9f6", "conv3x3": "#d4edda", "double3x3": "#c3e6cb",
                               "conv5x5": "#fff3cd", "pool_proj": "#f8d7da", "avg_pool_proj": "#f5c6cb"}  # fmt: skip
    return palette.get(kind, "#eeeeee")
