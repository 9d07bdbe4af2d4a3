"""quick_init: the events' and pool actions' __init__ behaves as dataclass's own."""

from __future__ import annotations

import dataclasses
import gc
import inspect
import pickle
import typing
from typing import Any

import pytest

import sansio.events
import sansio.pool
from sansio._frozen import quick_init

QUICK = [
    cls
    for module in (sansio.events, sansio.pool)
    for cls in vars(module).values()
    if isinstance(cls, type)
    and cls.__module__ == module.__name__
    and dataclasses.is_dataclass(cls)
    and cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
]


def _reference(cls: type) -> type:
    """The same fields through dataclass alone: the __init__ quick_init replaced."""
    namespace: dict[str, Any] = {
        "__annotations__": {f.name: f.type for f in dataclasses.fields(cls)},
        "__module__": cls.__module__,  # where its annotations' names live
    }
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            namespace[f.name] = f.default
    return dataclasses.dataclass(frozen=True, slots=True, kw_only=True)(
        type(cls.__name__, (), namespace)
    )


def _values(cls: type) -> dict[str, Any]:
    return {f.name: (f.name, i) for i, f in enumerate(dataclasses.fields(cls))}


def test_every_frozen_record_has_the_quick_init() -> None:
    assert len(QUICK) == 13
    for cls in QUICK:
        setters = cls.__init__.__code__.co_freevars
        assert setters, cls
        assert all(name.startswith("_set_") for name in setters), cls


@pytest.mark.parametrize("cls", QUICK, ids=lambda cls: cls.__name__)
def test_same_signature_values_and_errors_as_dataclass(cls: type) -> None:
    reference = _reference(cls)
    assert inspect.signature(cls.__init__) == inspect.signature(reference.__init__)
    values = _values(cls)
    made, expected = cls(**values), reference(**values)
    assert repr(made) == repr(expected)
    assert dataclasses.astuple(made) == dataclasses.astuple(expected)
    assert made == cls(**values)
    assert pickle.loads(pickle.dumps(made)) == made
    # The same refusals, word for word but for the class name.
    attempts: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        (tuple(values.values()), {}),
        ((), {**values, "unknown": 1}),
        ((), dict(list(values.items())[1:])),
    ]
    for args, kwargs in attempts:
        with pytest.raises(TypeError) as ours:
            cls(*args, **kwargs)
        with pytest.raises(TypeError) as theirs:
            reference(*args, **kwargs)
        assert str(ours.value) == str(theirs.value)
    name = dataclasses.fields(cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, name, 0)


@pytest.mark.parametrize("cls", QUICK, ids=lambda cls: cls.__name__)
def test_the_positional_constructor_makes_the_same_record(cls: type) -> None:
    """``_positional`` takes every field in order and makes what the keyword
    call makes: the same type, values and frozenness."""
    values = _values(cls)
    made = cls._positional(*values.values())  # type: ignore[attr-defined]
    assert type(made) is cls
    assert made == cls(**values)
    assert repr(made) == repr(cls(**values))
    assert dataclasses.astuple(made) == tuple(values.values())
    # Made as a twin and given its class after: nothing of the twin shows.
    assert pickle.loads(pickle.dumps(made)) == made
    assert gc.is_tracked(made) == gc.is_tracked(cls(**values))
    assert not hasattr(made, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, dataclasses.fields(cls)[0].name, 0)
    with pytest.raises(TypeError):  # every field, defaults included
        cls._positional(*list(values.values())[1:])  # type: ignore[attr-defined]


@pytest.mark.parametrize("cls", QUICK, ids=lambda cls: cls.__name__)
def test_annotations_resolve_as_for_dataclass(cls: type) -> None:
    reference = _reference(cls)
    hints = typing.get_type_hints(cls.__init__)
    assert hints == typing.get_type_hints(reference.__init__)
    assert hints["return"] is type(None)


def test_defaults_are_kept() -> None:
    event = sansio.events.InformationalResponse(stream_id=1, status=103, headers=[])
    assert event.reason_phrase == b""


def test_refuses_fields_it_cannot_set_the_same_way() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Positional:
        value: int

    @dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
    class Factory:
        values: list[int] = dataclasses.field(default_factory=list)

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Unslotted:
        value: int

    for cls in (Positional, Factory, Unslotted):
        with pytest.raises(TypeError, match="only plain keyword fields"):
            quick_init(cls)

    @dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
    class Checked:
        value: int

        def __post_init__(self) -> None:
            raise AssertionError

    with pytest.raises(TypeError, match="__post_init__ would not be called"):
        quick_init(Checked)
