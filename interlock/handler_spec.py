"""Handlers named on the command line: `--handlers MODULE:OBJECT`.

`OBJECT`, found in `MODULE` (imported with the current directory on `sys.path`), is either a
mapping `{target name: function}` or a callable that takes the router and registers handlers
itself with `@router.handler(NAME)`. Anything wrong with the spec is a `HandlerSpecError`
that says what, in one line (the module's own errors included: no traceback).
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Mapping
from typing import Any

from interlock.runtime.outcomes import DeliveryError
from interlock.runtime.router import Router

_SPEC = re.compile(r"(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<attribute>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\Z")


class HandlerSpecError(Exception):
    """A `--handlers` spec that does not give handlers; the message says why."""


def install_handlers(router: Router, spec: str) -> None:
    """Register on `router` the handlers that `spec` (MODULE:OBJECT) names."""
    found = _SPEC.match(spec)
    if found is None:
        raise HandlerSpecError(f"--handlers takes MODULE:OBJECT (say `handlers:HANDLERS`), not {spec!r}")
    handlers = _find(found["module"], found["attribute"])
    if isinstance(handlers, Mapping):
        _register_all(router, spec, handlers)
    elif callable(handlers):
        try:
            handlers(router)
        except DeliveryError as exc:
            raise HandlerSpecError(f"{spec}: {exc}") from None
        except Exception as exc:
            raise HandlerSpecError(f"calling {spec}(router) failed: {type(exc).__name__}: {exc}") from None
    else:
        raise HandlerSpecError(f"{spec} is a {type(handlers).__name__}: it must be a mapping of target names to "
                               "functions, or a function that takes the router and registers handlers")


def _find(module_name: str, attribute: str) -> Any:
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise HandlerSpecError(f"no module named `{module_name}` (looked in the current directory and the "
                                   "Python path)") from None
        raise HandlerSpecError(f"importing `{module_name}` failed: {type(exc).__name__}: {exc}") from None
    except (Exception, SystemExit) as exc:  # the module's own error, whatever it is (sys.exit included)
        raise HandlerSpecError(f"importing `{module_name}` failed: {type(exc).__name__}: {exc}") from None
    value: Any = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise HandlerSpecError(f"`{module_name}` has no `{attribute}`")
        value = getattr(value, part)
    return value


def _register_all(router: Router, spec: str, handlers: Mapping[Any, Any]) -> None:
    for target, function in handlers.items():
        if not isinstance(target, str) or not callable(function):
            raise HandlerSpecError(f"{spec} maps {target!r} to {type(function).__name__}: it must map target "
                                   "names to functions")
        try:
            router.handler(target)(function)
        except DeliveryError as exc:  # an unknown target: the message names the known ones
            raise HandlerSpecError(f"{spec}: {exc}") from None
