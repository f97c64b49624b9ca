"""search_spaces/variants_fmnist.yaml, the search over the Inception variants' dimensions: its
dimensions and budget, candidates that build and that the budget sorts, the search's objective on
it (with a stand-in trainer), and a residual, reduction-module candidate exported to .py and .pt2
that run with torch alone and predict."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import torch
from optuna.trial import TrialState

from sandbox.export import export
from sandbox.model.flops import count
from sandbox.search.objective import Objective
from sandbox.search.storage import open_study
from sandbox.space.bounds import random_suggest
from sandbox.spec.load import read_yaml, validate
from sandbox.spec.primitives import Primitive, lowest, primitives, sample
from sandbox.spec.search import search_config
from tests.export.test_export import expected_outputs, run_standalone
from tests.paths import SEARCH_SPACES
from tests.run_dirs import make_run_dir
from tests.search.test_objective import make_run, stand_in

if TYPE_CHECKING:
    from tests.conftest import CliResult

SPACE = SEARCH_SPACES / "variants_fmnist.yaml"
BUDGET = 16_000_000
# The dimensions the issue names: residual or concatenation per stage, the factorization's n, the
# branches of a reduction module (a choice of whole branches, `none` among them).
VARIANT_DIMENSIONS = {
    "stages[0].modules[1].combine", "stages[1].modules[1].combine",
    "stages[0].modules[1].scale", "stages[1].modules[1].scale",
    "stages[0].modules[1].branches[1].n", "stages[1].modules[1].branches[1].n",
    "stages[0].modules[0].branches[0]", "stages[0].modules[0].branches[1]", "stages[0].modules[0].branches[2]",
    "stages[1].modules[0].branches[1]",
}  # fmt: skip


def test_the_space_searches_the_variants_dimensions_within_a_budget() -> None:
    raw = read_yaml(SPACE)
    assert {p.path for p in primitives(raw)} >= VARIANT_DIMENSIONS
    assert search_config(raw["search"]).budget == BUDGET


def test_random_candidates_build_and_the_budget_sorts_them() -> None:
    raw = read_yaml(SPACE)
    rng = random.Random(0)
    combines, flops = set(), []
    for _ in range(8):
        spec = validate(sample(raw, random_suggest(rng)), base=SEARCH_SPACES)
        combines |= {module.combine for stage in spec.stages for module in stage.modules}
        assert [module.stride for module in spec.stages[0].modules][0] == 2
        counts = count(spec)
        assert [m.shape[1] for m in counts.modules if m.name in ("reduce14", "reduce7")] == [14, 7]
        flops.append(counts.flops)
    assert combines == {"concat", "residual"}
    assert min(flops) <= BUDGET < max(flops), flops  # the budget admits some and refuses others


def test_the_search_objective_counts_skips_and_trains_its_candidates(tmp_path: Path) -> None:
    run = make_run(tmp_path, space=read_yaml(SPACE), sampler="random", seed=3, trials=6)
    study, calls = open_study(run), []
    study.optimize(Objective(run, "cpu", train=stand_in(calls)), n_trials=6)
    assert all(t.state == TrialState.COMPLETE and "invalid" not in t.user_attrs for t in study.trials)
    over = [t for t in study.trials if t.user_attrs.get("over_budget")]
    assert all(t.user_attrs["flops"] > BUDGET for t in over)
    assert len(calls) == len(study.trials) - len(over) > 0  # the ones within the budget were trained


def _residual_candidate() -> dict[str, Any]:
    """Residual modules in both stages, a depthwise-separable branch in the first reduction and a
    factorized one in the second, and the rest at their first option."""
    wanted = {"combine": "residual", "stages[0].modules[0].branches[1]": "separable", "repeat": 1}

    def suggest(primitive: Primitive) -> Any:
        for key, value in wanted.items():
            if primitive.path == key or primitive.path.endswith(f".{key}"):
                return value
        return lowest(primitive)

    return sample(read_yaml(SPACE), suggest)


@pytest.mark.slow  # a subprocess importing torch
def test_a_candidate_exports_to_py_and_pt2_that_run_with_torch_alone(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    raw = _residual_candidate()
    spec = validate(raw, base=SEARCH_SPACES)
    assert [m.combine for stage in spec.stages for m in stage.modules] == ["concat", "residual"] * 2
    model = make_run_dir(tmp_path / "run", raw)
    py, pt2 = tmp_path / "out" / "net.py", tmp_path / "out" / "net.pt2"
    assert cli("export", tmp_path / "run", "--out", py).code == 0
    assert cli("export", tmp_path / "run", "--format", "pt2", "--out", pt2).code == 0
    text = py.read_text()
    assert "class ResidualInception(Inception):" in text and "groups=24" in text  # the separable branch
    case = {"py": str(py), "pt2": str(pt2), **expected_outputs(tmp_path, model, raw)}

    result = run_standalone({"variant": case}, tmp_path)

    assert result.pop("imported") == []
    assert max(result["variant"][key] for key in ("py", "pt2", "pt2_one", "py_pt2")) <= 1e-5, result
    assert all(len(top) == 3 for top in result["variant"]["predict"])


def test_a_candidate_exports_in_process(tmp_path: Path, write_yaml: Callable[..., Path]) -> None:
    """The fast tier's check: export's own comparison of the .py with the network, and a .pt2 that loads."""
    file = write_yaml(_residual_candidate())
    export(file, tmp_path / "net.py")  # refuses unless the file computes the network
    program = torch.export.load(export(file, tmp_path / "net.pt2", fmt="pt2")[0]).module()
    assert program(torch.rand(3, 1, 28, 28)).shape == (3, 10)
