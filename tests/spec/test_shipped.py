"""Shipped specs by name: where they are read from, how a name resolves, and what the wheel carries."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import sandbox
from sandbox.errors import SpecError
from sandbox.search.reference import reference_path
from sandbox.spec import shipped
from sandbox.spec.load import read_yaml
from sandbox.spec.search import search_config
from sandbox.spec.shipped import list_specs, resolve_spec
from tests.paths import REPO, SEARCH_SPACES


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped specs as a wheel lays them out, in sandbox/specs/ beside no search_spaces/."""
    folder = tmp_path / "sandbox" / "specs"
    shutil.copytree(SEARCH_SPACES, folder)
    monkeypatch.setattr(shipped, "INSTALLED", folder)
    monkeypatch.setattr(shipped, "SOURCE", tmp_path / "search_spaces")
    return folder


def test_names_are_the_source_folders_files_and_patterns_are_fnmatch() -> None:
    assert list_specs() == sorted(path.stem for path in SEARCH_SPACES.glob("*.yaml"))
    assert {"quickstart", "fmnist_baseline", "googlenet"} <= set(sandbox.list_specs())
    assert list_specs("inception_*") == ["inception_resnet_v2", "inception_v3", "inception_v4"]
    assert list_specs("nothing*") == []


def test_a_name_resolves_to_its_file_and_an_existing_path_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_spec("quickstart") == SEARCH_SPACES / "quickstart.yaml"
    assert resolve_spec("quickstart.yaml") == SEARCH_SPACES / "quickstart.yaml"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "googlenet").write_text("mine")
    assert resolve_spec("googlenet") == Path("googlenet")  # the user's file, not the shipped one
    assert resolve_spec("elsewhere/quickstart") == Path("elsewhere/quickstart")  # a path is never a name
    assert resolve_spec("nosuch") == Path("nosuch")


def test_installed_specs_are_found_by_name_and_name_each_other_relatively(installed: Path) -> None:
    path = resolve_spec("quickstart")
    assert path == installed / "quickstart.yaml"
    reference = search_config(read_yaml(path)["search"]).reference
    assert reference is not None and reference_path(reference, path.parent) == installed / "fmnist_baseline.yaml"
    assert sum(p.numel() for p in sandbox.build("googlenet", device="meta").parameters()) == 6_624_904


def test_build_on_a_search_space_says_it_is_one_and_what_to_run() -> None:
    with pytest.raises(SpecError, match=r"is a search space \(\d+ search primitives, the first at stem\.out\)") as err:
        sandbox.build("quickstart")
    assert "`sandbox show quickstart`" in str(err.value) and "`sandbox search quickstart`" in str(err.value)
    assert err.value.path == str(SEARCH_SPACES / "quickstart.yaml")


def test_a_misspelt_name_suggests_the_shipped_one() -> None:
    with pytest.raises(SpecError, match=r"cannot read spec quickstrat: .*; did you mean 'quickstart'\?$"):
        sandbox.load_spec("quickstrat")


def test_the_built_package_carries_the_specs_and_no_top_level_plugins(tmp_path: Path) -> None:
    pytest.importorskip("setuptools")
    out = tmp_path / "lib"
    subprocess.run(
        [sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(out)],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=120,
    )
    for spec in SEARCH_SPACES.glob("*.yaml"):
        assert (out / "sandbox" / "specs" / spec.name).read_bytes() == spec.read_bytes()
    assert (out / "sandbox" / "plugins" / "stems.py").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["sandbox"]
