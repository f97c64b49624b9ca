"""The builder: shapes, norm/act options, aux heads, built-in normalization, and a user plugin end to end."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from sandbox import SpecError, build, register_branch
from sandbox.registry import REGISTRY
from tests.paths import REPO

Spec = dict[str, Any]

BRANCHES = [
    ("conv1x1", {"out": 8}),
    ("conv3x3", {"reduce": 4, "out": 12}),
    ("conv5x5", {"reduce": 4, "out": 6}),
    ("double3x3", {"reduce": 4, "out": 10}),
    ("pool_proj", {"out": 5}),
    ("avg_pool_proj", {"out": 5}),
    ("conv", {"out": 6, "kernel": [1, 3]}),
    ("factorized", {"reduce": 4, "out": 6, "n": 5}),
    ("separable", {"out": 7, "kernel": 5}),
]
POOLS = [("pool", {"kind": "max"}), ("pool", {"kind": "avg", "kernel": 5})]  # no projection: the input's width
SPATIAL = [*(b for b in BRANCHES if b[0] != "conv1x1"), *POOLS]


def _branch(name: str, params: dict[str, Any], **options: Any) -> nn.Module:
    factory = REGISTRY.get("branch", name, name).factory
    takes_norm = "norm" in REGISTRY.get("branch", name, name).params
    return factory(16, **params, **options) if takes_norm or "norm" not in options else factory(16, **params)


@pytest.mark.parametrize("norm", ["batchnorm", "none"])
@pytest.mark.parametrize(("name", "params"), BRANCHES + POOLS, ids=[name for name, _ in BRANCHES + POOLS])
def test_builtin_branch_keeps_height_and_width(name: str, params: dict[str, Any], norm: str) -> None:
    branch = _branch(name, params, norm=norm)
    assert branch(torch.rand(2, 16, 7, 9)).shape == (2, params.get("out", 16), 7, 9)


@pytest.mark.parametrize(("name", "params"), BRANCHES + POOLS, ids=[name for name, _ in BRANCHES + POOLS])
def test_every_builtin_branch_strides_to_the_same_size(name: str, params: dict[str, Any]) -> None:
    """At stride 2 every branch gives ceil(size / 2), so the branches of a reduction module agree."""
    for size in ((7, 9), (8, 10)):
        assert _branch(name, params, stride=2)(torch.rand(2, 16, *size)).shape[2:] == (4, 5)


@pytest.mark.parametrize(("name", "params"), SPATIAL, ids=[name for name, _ in SPATIAL])
def test_padding_zero_is_the_valid_reduction_of_inception_v3(name: str, params: dict[str, Any]) -> None:
    kernel = params.get("kernel", 5 if name == "conv5x5" else 3)
    rows, columns = (1, kernel[1]) if isinstance(kernel, list) else (params.get("n", kernel),) * 2
    if name == "factorized":  # the padding is the last layer's, the nx1
        rows, columns = params["n"], 1
    out = _branch(name, params, stride=2, padding=0)(torch.rand(2, 16, 17, 17))
    assert out.shape[2:] == ((17 - rows) // 2 + 1, (17 - columns) // 2 + 1)


def test_module_concatenates_branches_and_stages_downsample(small_spec: Callable[[], Spec]) -> None:
    model = build(small_spec())
    shapes: list[tuple[int, ...]] = []
    for stage in model.stages:
        stage.blocks[0].register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape)))
    logits = model(torch.rand(2, 1, 28, 28))
    assert shapes == [(2, 8 + 16 + 8 + 8, 28, 28), (2, 16 + 8, 14, 14)]  # out = sum of branch outs
    assert logits.shape == (2, 10)


def _layers(model: nn.Module, kind: type[nn.Module]) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, kind)]


def test_norm_none_drops_batch_norm_gives_biases_and_keeps_activation(small_spec: Callable[[], Spec]) -> None:
    default = build(small_spec())
    assert _layers(default, nn.modules.batchnorm._BatchNorm)
    assert all(conv.bias is None for conv in _layers(default, nn.Conv2d))

    model = build(small_spec() | {"defaults": {"norm": "none"}})
    convs = _layers(model, nn.Conv2d)
    assert not _layers(model, nn.modules.batchnorm._BatchNorm)
    assert all(conv.bias is not None for conv in convs)
    assert len(_layers(model, nn.ReLU)) == len(convs)  # one activation per convolution
    out = model.stages[0].blocks[0].branches[0](torch.randn(4, 16, 8, 8))
    assert out.min() == 0  # ReLU applied: nothing negative, and some units cut off


def test_aux_heads_only_run_in_forward_with_aux(small_spec: Callable[[], Spec]) -> None:
    plain = build(small_spec()).eval()
    model = build(small_spec() | {"aux": [{"after": "0.0", "conv": 8, "hidden": 16}]}).eval()
    loaded = model.load_state_dict(plain.state_dict(), strict=False)
    assert loaded.unexpected_keys == [] and all(key.startswith("aux.0.") for key in loaded.missing_keys)
    calls: list[int] = []
    model.aux[0].register_forward_hook(lambda *_: calls.append(1))
    x = torch.rand(2, 1, 28, 28)

    with torch.no_grad():
        logits = model(x)
        assert calls == []
        main, aux = model.forward_with_aux(x)
    assert calls == [1]
    assert torch.equal(logits, plain(x))  # the aux head leaves the main path alone
    assert torch.equal(main, logits)
    assert [a.shape for a in aux] == [(2, 10)]
    assert model.aux_weights == (0.3,)


def test_aux_heads_take_the_networks_activation(small_spec: Callable[[], Spec]) -> None:
    aux = {"aux": [{"after": "0.0", "conv": 8, "hidden": 16}]}
    relu = build(small_spec() | aux, device="meta").aux[0]
    gelu = build(small_spec() | aux | {"defaults": {"act": "gelu"}}, device="meta").aux[0]
    activations = lambda head: [type(m).__name__ for m in head.modules() if "LU" in type(m).__name__]  # noqa: E731
    assert activations(relu) == ["ReLU", "ReLU"]  # the conv's, then the fc's
    assert activations(gelu) == ["GELU", "GELU"]


def test_model_normalizes_its_input(small_spec: Callable[[], Spec]) -> None:
    normalize = {"mean": [0.5, 0.125], "std": [0.25, 2]}
    model = build(small_spec() | {"input": {"channels": 2, "size": 28}, "normalize": normalize})
    assert model.mean.flatten().tolist() == [0.5, 0.125] and model.std.flatten().tolist() == [0.25, 2.0]
    seen: list[torch.Tensor] = []
    model.stem.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    x = torch.rand(1, 2, 28, 28)
    model(x)
    expected = torch.stack([(x[:, 0] - 0.5) / 0.25, (x[:, 1] - 0.125) / 2], dim=1)
    torch.testing.assert_close(seen[0], expected)


def test_meta_device_builds_without_memory(small_spec: Callable[[], Spec]) -> None:
    model = build(small_spec() | {"input": {"channels": 1, "size": 4096}}, device="meta")
    assert {p.device.type for p in model.parameters()} == {"meta"}


def test_repeated_modules_chain_their_widths(small_spec: Callable[[], Spec]) -> None:
    raw = small_spec()
    raw["stages"][0]["modules"][0]["repeat"] = 3
    model = build(raw)
    first_convs = [block.branches[0].conv for block in model.stages[0].blocks]
    assert [conv.in_channels for conv in first_convs] == [16, 40, 40]
    assert model(torch.rand(1, 1, 28, 28)).shape == (1, 10)


@pytest.mark.usefixtures("isolated_registry")
@pytest.mark.parametrize(
    ("factory", "fragment"),
    [
        (lambda c: 3, "branch 'misbehaving' returned int, not an nn.Module"),
        (lambda c: nn.Flatten(), "branch 'misbehaving' produced (2, 12544), not a non-empty (N, C, H, W) feature map"),
        (lambda c: nn.Conv2d(c, 4, 1, bias=None, groups=5), "branch 'misbehaving' failed to build: ValueError"),
    ],
    ids=["not-a-module", "not-a-feature-map", "factory-raises"],
)
def test_a_misbehaving_plugin_is_a_spec_error(
    small_spec: Callable[[], Spec], factory: Callable[[int], Any], fragment: str
) -> None:
    register_branch("misbehaving")(factory)
    raw = small_spec()
    raw["stages"][0]["modules"][0]["branches"][3] = {"type": "misbehaving"}
    with pytest.raises(SpecError) as info:
        build(raw, device="meta")
    assert info.value.path == "stages[0].modules[0].branches[3]"
    assert fragment in info.value.message


@pytest.mark.parametrize(
    ("edit", "path"),
    [
        (lambda raw: raw.setdefault("defaults", {}).update(norm="batchnrm"), "defaults.norm"),
        (lambda raw: raw["stem"].update(act="rleu"), "stem.act"),
        (
            lambda raw: raw["stages"][0]["modules"][0]["branches"][1].update(act="rleu"),
            "stages[0].modules[0].branches[1].act",
        ),
    ],
    ids=["norm-in-defaults", "act-at-the-stem", "act-at-a-branch"],
)
def test_an_unknown_norm_or_activation_names_its_own_key(
    small_spec: Callable[[], Spec], edit: Callable[[Spec], None], path: str
) -> None:
    raw = small_spec()
    edit(raw)
    with pytest.raises(SpecError) as info:
        build(raw, device="meta")
    assert info.value.path == path
    assert "failed to build: KeyError" in info.value.message


@pytest.mark.usefixtures("isolated_registry")
def test_a_plugin_that_builds_other_layers_when_called_again_is_a_spec_error(small_spec: Callable[[], Spec]) -> None:
    """The builder calls a factory twice (a meta probe, then the real module): a width that changes between
    calls made training fail with a channel mismatch deep in torch."""
    calls = itertools.count()
    register_branch("varying")(lambda c: nn.Conv2d(c, 4 + next(calls) % 2, 1))
    raw = small_spec()
    raw["stages"][0]["modules"][0]["branches"][3] = {"type": "varying"}
    with pytest.raises(SpecError) as info:
        build(raw)
    assert info.value.path == "stages[0].modules[0].branches[3]"
    assert "branch 'varying' (" in info.value.message and "built other layers when called again" in info.value.message
    build(raw, device="meta")  # on the meta device the probe is the module: nothing to disagree with


@pytest.mark.usefixtures("isolated_registry")
def test_nin_example_stem_builds_and_trains_one_step(small_spec: Callable[[], Spec]) -> None:
    """A user plugin end to end: the shipped example file, named by the spec, in a network that learns."""
    raw = small_spec() | {"plugins": [str(REPO / "plugins" / "examples" / "nin.py")], "stem": {"type": "nin", "out": 8}}
    torch.manual_seed(0)
    model = build(raw)
    assert len(_layers(model.stem, nn.Conv2d)) == 3
    x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.stem.parameters()]

    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()

    assert any(not torch.equal(b, p) for b, p in zip(before, model.stem.parameters(), strict=True))
    with torch.no_grad():
        assert nn.functional.cross_entropy(model(x), y) < loss
