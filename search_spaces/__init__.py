"""Search spaces, one per module, registered in :data:`SPACES`.

:func:`space_from_spec` builds one from the text users type on the command line:
``NAME`` or ``NAME:ARGS``, where ARGS are comma-separated ``key=value`` pairs (``nb201:c=8,n=1``)
and a bare value is the first constructor argument (``onnx_folder:models/``).
"""

from __future__ import annotations

import inspect
from typing import Any

from nas.errors import GenotypeError
from nas.registry import Registry
from search_spaces.base import Dimension, FiniteSearchSpace, SearchSpace

SPACES: Registry[SearchSpace] = Registry("search space")

# each module registers its space in SPACES
from search_spaces.darts import DartsSpace  # noqa: E402
from search_spaces.mbv3 import MBv3Space  # noqa: E402
from search_spaces.nb101 import NB101Space  # noqa: E402
from search_spaces.nb201 import NB201Space  # noqa: E402
from search_spaces.onnx_folder import OnnxFolderSpace  # noqa: E402

__all__ = ["SPACES", "DartsSpace", "Dimension", "FiniteSearchSpace", "MBv3Space", "NB101Space", "NB201Space",
           "OnnxFolderSpace", "SearchSpace", "required_arguments", "space_from_spec"]


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def required_arguments(name: str) -> list[str]:
    """The constructor arguments space ``name`` cannot do without (``["folder"]`` for ``onnx_folder``)."""
    sig = inspect.signature(SPACES.get(name))
    return [p.name for p in sig.parameters.values()
            if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def space_from_spec(spec: str | SearchSpace) -> SearchSpace:
    """A space from ``NAME`` or ``NAME:ARGS`` (see the module docstring); instances pass through."""
    if not isinstance(spec, str):
        return spec
    name, _, rest = spec.partition(":")
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))) if rest else ():
        key, eq, value = part.partition("=")
        if eq:
            kwargs[key.strip()] = _value(value.strip())
        elif not args and not kwargs:
            args.append(part)  # a bare value: the first argument (a folder keeps its text)
        else:
            raise GenotypeError(f"space spec {spec!r}: only the first argument may be given without a name; "
                                f"write key=value for {part!r}")
    factory = SPACES.get(name.strip())
    missing = [a for a in required_arguments(name.strip())[len(args):] if a not in kwargs]
    if missing:
        raise GenotypeError(f"space {name!r} needs {', '.join(missing)}: write e.g. --space {name}:{missing[0]}=VALUE")
    try:
        return factory(*args, **kwargs)
    except TypeError as e:
        params = ", ".join(inspect.signature(factory).parameters)
        raise GenotypeError(f"space spec {spec!r}: {e}; the space takes: {params}") from e
