"""`sandbox.train`, `sandbox.search` and `sandbox.export` are both packages and the API's verbs.

A module attribute cannot be both: importing `sandbox.search.flow` sets `sandbox.search` to the
package, whatever `sandbox/__init__.py` put there. So each such package makes itself callable, and a
call goes to `sandbox.api`'s function of the same name, the one place the verbs are defined.
"""

import sys
import types
from typing import Any


def make_callable(package: str, verb: str) -> None:
    """Make the package named `package` callable as `sandbox.api.<verb>`."""

    class Verb(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            from sandbox import api

            return getattr(api, verb)(*args, **kwargs)

    sys.modules[package].__class__ = Verb
