"""`sandbox.train` and `sandbox.evaluate`: the verbs as calls that return objects, errors as SpecError."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import sandbox
from sandbox.errors import SpecError
from tests.train.test_loop import tiny


def test_train_then_evaluate_from_python(synthetic: Path, tmp_path: Path, write_yaml) -> None:
    spec = write_yaml(tiny(synthetic, epochs=3))
    run = sandbox.train(spec, out=tmp_path / "run", device="cpu", epochs=1, lr=0.05, overrides={"head.dropout": 0.1})
    assert run.path == tmp_path / "run" and len(run.history) == 1
    written = yaml.safe_load((run.path / "spec.yaml").read_text())
    assert written["train"]["lr"] == 0.05 and written["head"]["dropout"] == 0.1  # keywords are train: keys
    assert run.metrics["epochs"] == 1  # epochs overrides this run only, as --epochs does
    result = sandbox.evaluate(run, device="cpu")
    assert result.accuracy == run.test_accuracy == result.recorded  # re-measured exactly as training did
    assert result.images == 100 and sum(n for n, _ in result.classes.values()) == 100
    assert set(result.per_class) == set(run.metrics["dataset"]["class_names"])


def test_a_bad_keyword_is_a_spec_error_naming_the_key(synthetic: Path, write_yaml) -> None:
    with pytest.raises(SpecError, match=r"^train\.lrr: .*did you mean 'lr'"):
        sandbox.train(write_yaml(tiny(synthetic)), device="cpu", lrr=0.1)
    with pytest.raises(SpecError, match=r"^out: "):
        sandbox.train(write_yaml(tiny(synthetic)), device="cpu", resume=True)
