"""Training: config, data, the loop, run directories.

`sandbox.train` is also the call that trains a spec (`sandbox.api.train`): this package's name is the
verb's, and a module attribute cannot be both, so the package itself is made callable.
"""

import sys
import types
from typing import Any


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from sandbox.api import train

        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
