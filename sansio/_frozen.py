"""A quicker ``__init__`` for the frozen, slotted dataclasses made per request."""

from __future__ import annotations

import dataclasses
import sys
import types
from typing import Any, TypeVar

T = TypeVar("T")


def quick_init(cls: type[T]) -> type[T]:
    """Give a ``@dataclass(frozen=True, slots=True, kw_only=True)`` class an
    ``__init__`` that sets each slot through its descriptor.

    The generated one goes through ``object.__setattr__`` per field, which
    makes a five-field event cost three times a plain class's construction;
    events and pool actions are made several times per request. The new
    ``__init__`` has the same keyword-only signature and defaults (so the
    same TypeErrors), and the class stays frozen: only construction changes.
    Made the way ``dataclasses`` makes its own, from the class's fields.

    The class also gets ``_positional``, a static constructor taking every
    field in order, for the protocol cores' own hot paths: a call to the
    class with keywords packs them into a dict first (Python 3.11 calls a
    class's ``__init__`` that way), which costs as much as the rest. It fills
    an instance of a plain twin class with the same slots (ordinary attribute
    stores, which the interpreter specialises; each descriptor call above
    packs its arguments into a tuple), then gives the instance its real
    class: the layouts are the same, which Python checks on that assignment.
    Half the time of the descriptor calls.
    """
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: __post_init__ would not be called")
    captured: dict[str, Any] = {}  # the setters and defaults, as closure cells
    params = []
    for f in fields:
        slot = cls.__dict__.get(f.name)
        if (
            not (f.kw_only and f.init)
            or f.default_factory is not dataclasses.MISSING
            or not isinstance(slot, types.MemberDescriptorType)
        ):
            raise TypeError(f"{cls.__name__}.{f.name}: only plain keyword fields")
        captured[f"_set_{f.name}"] = slot.__set__
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            captured[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
    body = "".join(f"        _set_{f.name}(self, {f.name})\n" for f in fields)
    stores = "".join(f"        self.{f.name} = {f.name}\n" for f in fields)
    names = ", ".join(f.name for f in fields)
    source = (
        f"def make(_new, _cls, _twin, {', '.join(captured)}):\n"
        f"    def __init__(self, *, {', '.join(params)}):\n{body}"
        f"    def _positional({names}):\n"
        f"        self = _new(_twin)\n{stores}"
        "        self.__class__ = _cls\n"
        "        return self\n"
        "    return __init__, _positional\n"
    )
    slots = tuple(cls.__slots__)  # type: ignore[attr-defined]
    twin = type(f"_{cls.__name__}Twin", (), {"__slots__": slots})
    # The module's globals, as dataclasses does: typing.get_type_hints()
    # resolves the (string) annotations against them.
    made: dict[str, Any] = {}
    exec(source, vars(sys.modules[cls.__module__]), made)
    init, positional = made["make"](object.__new__, cls, twin, **captured)
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    init.__annotations__ = {f.name: f.type for f in fields} | {"return": None}
    cls.__init__ = init  # type: ignore[method-assign]
    positional.__qualname__ = f"{cls.__qualname__}._positional"
    cls._positional = staticmethod(positional)  # type: ignore[attr-defined]
    return cls
