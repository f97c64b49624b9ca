"""Ships the repository's `search_spaces/*.yaml` inside the package, as `sandbox/specs/`.

The folder stays at the top of the repository (the README's commands name `search_spaces/...`);
the wheel needs the files in the package, so `sandbox search quickstart` works from a plain
`pip install` (`sandbox.spec.shipped` reads either place). Everything else is in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SOURCE = Path(__file__).parent / "search_spaces"


class BuildPyWithSpecs(build_py):
    """`build_py` that also copies the shipped specs into the built package."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads search_spaces/ in place
            return
        target = Path(self.build_lib) / "sandbox" / "specs"
        self.mkpath(str(target))
        for spec in sorted(SOURCE.glob("*.yaml")):
            self.copy_file(str(spec), str(target / spec.name))


setup(cmdclass={"build_py": BuildPyWithSpecs})
