"""Every project error survives pickling, as when a worker process raises it, with its type, message and
fields (BaseException pickles ``args`` and ``__dict__``; a class whose ``__init__`` needs more than the
message must say how to rebuild itself)."""

from __future__ import annotations

import importlib
import pickle

import pytest

from nas.errors import GraphCycleError, NasError, UnsupportedOpError

# every module that defines an error class; importing them registers their subclasses
_MODULES = ("nas.errors", "nas.search.differentiable.errors", "nas.integrations.spaces",
            "nas.integrations.distributed", "benchmarks.tabular")


def _all_errors() -> list[type[NasError]]:
    for name in _MODULES:
        importlib.import_module(name)
    found, todo = [], [NasError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(set(found), key=lambda c: f"{c.__module__}.{c.__qualname__}")


def _example(cls: type[NasError]) -> NasError:
    """One instance, with every field set to something other than its default."""
    from nas.search.differentiable.errors import ArchWeightsNaNError

    if issubclass(cls, UnsupportedOpError):
        return cls("op Foo is not supported at node n3", op="Foo", node="n3")
    if issubclass(cls, GraphCycleError):
        return cls("the graph has a cycle", nodes=["a", "b"])
    if issubclass(cls, ArchWeightsNaNError):
        return cls("alpha became NaN", 4, 17)
    return cls("what went wrong, and where")  # a class with other required fields fails here: add it above


@pytest.mark.parametrize("cls", _all_errors(), ids=lambda c: c.__qualname__)
def test_error_round_trips_through_pickle(cls: type[NasError]) -> None:
    err = _example(cls)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls
    assert str(back) == str(err)
    assert vars(back) == vars(err)


def test_the_fields_are_the_ones_given() -> None:
    back = pickle.loads(pickle.dumps(UnsupportedOpError("unsupported", op="Foo", node="n3")))
    assert (back.op, back.node) == ("Foo", "n3")
    assert pickle.loads(pickle.dumps(GraphCycleError("cycle", ["a", "b"]))).nodes == ("a", "b")
