"""`--format pt2` and `--format onnx`: the network as a traced graph, with no Python code to ship.

Both come from one `torch.export` program with a dynamic batch dimension; aux heads (training
only) are removed first so that neither their weights nor their inputs end up in the graph.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import torch
from torch import nn

from sandbox.errors import SandboxError
from sandbox.export.source import Exportable

ONNX_PACKAGES = ("onnx", "onnxscript")


def exported_program(exportable: Exportable) -> torch.export.ExportedProgram:
    """The eval-mode network as a `torch.export` program taking (batch, C, H, W) float images in [0, 1]."""
    model = copy.deepcopy(exportable.model).eval()
    model.aux = nn.ModuleList()
    spec = exportable.spec
    example = torch.rand(2, spec.channels, spec.size, spec.size)
    batch = torch.export.Dim("batch")
    try:
        return torch.export.export(model, (example,), dynamic_shapes={"x": {0: batch}})
    except Exception as err:
        raise SandboxError(f"torch.export cannot trace {spec.name}: {type(err).__name__}: {err}") from err


def write_pt2(exportable: Exportable, out: Path) -> list[Path]:
    """A program that `torch.export.load(out).module()` runs with torch alone."""
    if out.suffix != ".pt2":
        raise SandboxError(f"--out {out}: a torch.export program must end in .pt2")
    program = exported_program(exportable)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, out)
    return [out]


def write_onnx(exportable: Exportable, out: Path) -> list[Path]:
    """The same program as ONNX (input `images`, output `logits`), via torch's dynamo exporter."""
    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise SandboxError(
            f"--format onnx needs the ONNX exporter ({', '.join(missing)} not installed): "
            "pip install 'inception-sandbox[onnx]', or export --format pt2"
        )
    if out.suffix != ".onnx":
        raise SandboxError(f"--out {out}: an ONNX file must end in .onnx")
    program = exported_program(exportable)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        program,
        f=str(out),
        input_names=["images"],
        output_names=["logits"],
        dynamo=True,
        external_data=False,
        verbose=False,
    )
    return [out]
