"""Inception Sandbox: build, train, search and export GoogLeNet-style networks from YAML specs."""

__version__ = "0.3.0"

from sandbox.errors import PluginError, SandboxError, SpecError
from sandbox.registry import REGISTRY, register_branch, register_downsample, register_stem
from sandbox.spec.shipped import list_specs

__all__ = [
    "REGISTRY",
    "PluginError",
    "SandboxError",
    "SpecError",
    "__version__",
    "build",
    "evaluate",
    "export",
    "list_specs",
    "load_spec",
    "register_branch",
    "register_downsample",
    "register_stem",
    "search",
    "train",
]


def __getattr__(name: str):  # lazy, so plugins can import the decorators without the builder
    if name == "build":
        from sandbox.model.builder import build

        return build
    if name in ("train", "search", "evaluate", "export"):
        from sandbox import api

        return getattr(api, name)
    if name == "load_spec":
        from sandbox.spec.load import load_spec

        return load_spec
    raise AttributeError(name)
