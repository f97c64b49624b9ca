"""`--format pt2` and `--format onnx`: the network as a traced graph, with no Python code to ship.

Both come from one `torch.export` program with a dynamic batch dimension; aux heads (training
only) are removed first so that neither their weights nor their inputs end up in the graph.

The ONNX file says what it needs without the sandbox: its batch axis is named `batch` (the exporter
names it after a symbol, `s77`), and its metadata (`metadata_props`, onnxruntime's
`get_modelmeta().custom_metadata_map`) holds `class_names`, `input` (shape, dtype, range) and
`normalization` (the mean and std the network applies itself), each as JSON, and `source`.
"""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sandbox.errors import SandboxError
from sandbox.export.source import Exportable

ONNX_PACKAGES = ("onnx", "onnxscript")
BATCH_AXIS = "batch"


def exported_program(exportable: Exportable) -> torch.export.ExportedProgram:
    """The eval-mode network as a `torch.export` program taking (batch, C, H, W) float images in [0, 1]."""
    model = copy.deepcopy(exportable.model).eval()
    model.aux = nn.ModuleList()
    spec = exportable.spec
    example = torch.rand(2, spec.channels, spec.size, spec.size)
    batch = torch.export.Dim(BATCH_AXIS)
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
    with out.open("wb") as handle:  # opened here: torch's own writer fails with a RuntimeError, not an OSError
        torch.export.save(program, handle)
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
    describe_onnx(out, onnx_metadata(exportable))
    return [out]


def onnx_metadata(exportable: Exportable) -> dict[str, str]:
    """What a runtime needs to feed the file and read its output, as JSON strings."""
    spec = exportable.spec
    found: dict[str, Any] = {
        "input": {"name": "images", "shape": [BATCH_AXIS, spec.channels, spec.size, spec.size], "dtype": "float32",
                  "range": [0, 1]},
        "normalization": {"mean": list(spec.mean), "std": list(spec.std), "applied": "by the model, to the input"},
    }  # fmt: skip
    if exportable.classes is not None:
        found["class_names"] = list(exportable.classes)
    return {key: json.dumps(value) for key, value in found.items()} | {"source": exportable.origin}


def describe_onnx(path: Path, metadata: dict[str, str]) -> None:
    """Name the batch axis `batch` wherever the exporter's symbol for it appears, and add `metadata`."""
    import onnx

    model = onnx.load(str(path))
    symbol = model.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    for value in (*model.graph.input, *model.graph.output, *model.graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if symbol and dim.dim_param == symbol:
                dim.dim_param = BATCH_AXIS
    for key, text in metadata.items():
        model.metadata_props.add(key=key, value=text)
    onnx.save(model, str(path))
