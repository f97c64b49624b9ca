"""The shipped Inception specs are their references: torchvision's Inception-v3, timm's Inception-v4
and Inception-ResNet-v2, d2l's NiN (the same parameters, FLOPs and, with the reference's weights
loaded, outputs), and BN-Inception is the 2015 paper's table. Nothing downloads: each reference is
built with random weights."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from sandbox import build, load_spec
from sandbox.model.flops import count
from tests.model.references import REFERENCES, copy_in_order, forward_flops, redraw
from tests.paths import SEARCH_SPACES

PARITY = 1e-4  # max abs difference of the logits


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    """One thread: steadier timings on a shared machine, and the parity checks need no more."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", list(REFERENCES))
def test_parameters_and_flops_are_the_references(name: str) -> None:
    reference = REFERENCES[name]
    with torch.device("meta"):
        theirs = reference.make()
    spec = load_spec(reference.path)
    counts = count(spec)
    ours = build(spec, device="meta")
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters()) == reference.params
    assert counts.flops == forward_flops(theirs, spec.size, spec.channels)
    if reference.library != "order":  # the spec's header states the figures
        assert (
            f"{counts.params:,} parameters" in reference.path.read_text()
            and f"{counts.flops:,}" in reference.path.read_text()
        )
    if name == "inception_v3":  # the aux head is training-only, so not in the inference count
        assert counts.params == 23_834_568 and reference.params == 27_161_264


def _loaded(name: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The reference with redrawn weights, in eval mode, and the sandbox network with them loaded."""
    reference = REFERENCES[name]
    theirs = reference.make().eval()
    redraw(theirs)
    if reference.library == "order":
        ours = build(reference.path)
        copy_in_order(theirs, ours)
    else:
        ours = build(reference.path, **{f"{reference.library}_weights": theirs.state_dict()})
    return theirs, ours.eval()


def _images(name: str, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Images in [0, 1] for the sandbox network, and the same normalized as the reference takes them."""
    spec = load_spec(REFERENCES[name].path)
    images = torch.rand(batch, spec.channels, spec.size, spec.size, generator=torch.Generator().manual_seed(1))
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in (spec.mean, spec.std))
    return images, (images - mean) / std


@pytest.mark.parametrize(
    "name", [pytest.param("inception_v3"), pytest.param("inception_v4", marks=pytest.mark.slow),
             pytest.param("inception_resnet_v2", marks=pytest.mark.slow), pytest.param("nin")],
)  # fmt: skip
def test_with_the_references_weights_the_outputs_are_the_references(name: str) -> None:
    theirs, ours = _loaded(name)
    images, normalized = _images(name)
    with torch.no_grad():
        expected, actual = theirs(normalized), ours(images)
    assert (expected[0] - expected[1]).abs().max() > 100 * PARITY  # outputs depend on the input: not vacuous
    assert (actual - expected).abs().max() <= PARITY


def test_inception_v3s_aux_head_is_torchvisions() -> None:
    theirs, ours = _loaded("inception_v3")
    images, normalized = _images("inception_v3", batch=1)
    for model in (theirs, ours):  # training mode runs the aux head; eval's batch norm and dropout keep it exact
        model.train()
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d | torch.nn.Dropout):
                module.eval()
    with torch.no_grad():
        expected = theirs(normalized)
        logits, aux = ours.forward_with_aux(images)
    assert (logits - expected.logits).abs().max() <= PARITY
    assert len(aux) == 1 and (aux[0] - expected.aux_logits).abs().max() <= PARITY


# Ioffe & Szegedy (2015), Figure 5: per module, the output size printed, then #1x1, #3x3 reduce, #3x3,
# double #3x3 reduce, double #3x3, and the pool: "avg"/"max" with its projection, or "pass" (through).
BN_INCEPTION_TABLE = {
    "inception3a": (256, 64, 64, 64, 64, 96, ("avg", 32)),
    "inception3b": (320, 64, 64, 96, 64, 96, ("avg", 64)),
    "inception3c": (576, 0, 128, 160, 64, 96, ("max", "pass")),
    "inception4a": (576, 224, 64, 96, 96, 128, ("avg", 128)),
    "inception4b": (576, 192, 96, 128, 96, 128, ("avg", 128)),
    "inception4c": (576, 160, 128, 160, 128, 160, ("avg", 128)),
    "inception4d": (576, 96, 128, 192, 160, 192, ("avg", 128)),
    "inception4e": (1024, 0, 128, 192, 192, 256, ("max", "pass")),
    "inception5a": (1024, 352, 192, 320, 160, 224, ("avg", 128)),
    "inception5b": (1024, 352, 192, 320, 192, 224, ("max", 128)),
}


def _bn_inception_widths(module: Any) -> tuple[Any, ...]:
    """A BN-Inception module of the spec in the table's columns (but the printed output size)."""
    calls = {call.type: call.params for call in module.calls}
    pool = next(t for t in ("avg_pool_proj", "pool_proj", "pool") if t in calls)
    kind = {"avg_pool_proj": "avg", "pool_proj": "max", "pool": calls[pool].get("kind", "max")}[pool]
    return (
        calls.get("conv1x1", {}).get("out", 0),
        calls["conv3x3"]["reduce"], calls["conv3x3"]["out"],
        calls["double3x3"]["reduce"], calls["double3x3"]["out"],
        (kind, calls[pool].get("out", "pass")),
    )  # fmt: skip


def misprinted_rows(outputs: dict[str, int]) -> list[str]:
    """The table's rows whose widths do not add up to the output size printed for them, given the
    channels each module really takes (`outputs`: module → its output channels, in order)."""
    rows, previous = [], 192  # the stem's 192 channels
    for name, (printed, one, _, three, _, double, (_, pool)) in BN_INCEPTION_TABLE.items():
        total = one + three + double + (previous if pool == "pass" else pool)
        if total != printed:
            rows.append(f"{name}: {total} != {printed}")
        previous = outputs[name]
    return rows


def test_bn_inception_is_the_papers_table() -> None:
    spec = load_spec(SEARCH_SPACES / "bn_inception.yaml")
    modules = [module for stage in spec.stages for module in stage.modules]
    assert [module.name for module in modules] == list(BN_INCEPTION_TABLE)
    for module in modules:
        assert _bn_inception_widths(module) == BN_INCEPTION_TABLE[module.name][1:], module.name
        assert module.stride == (2 if BN_INCEPTION_TABLE[module.name][-1][1] == "pass" else 1), module.name
    counts = count(spec)
    outputs = {m.name: m.shape[0] for m in counts.modules if m.name in BN_INCEPTION_TABLE}
    sizes = {m.name: m.shape[1] for m in counts.modules if m.name in BN_INCEPTION_TABLE}
    assert [sizes[name] for name in ("inception3b", "inception3c", "inception4e", "inception5b")] == [28, 14, 7, 7]
    # The widths, as in the paper's released model, win over three printed sizes that do not add up:
    assert misprinted_rows(outputs) == [
        "inception4c: 608 != 576",
        "inception4d: 608 != 576",
        "inception4e: 1056 != 1024",
    ]
    assert outputs["inception5b"] == 1024 and counts.params == 11_285_224
