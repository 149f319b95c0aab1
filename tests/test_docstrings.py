"""Every public class and method of the public surface has a docstring.

The surface is ``actors.__all__`` and ``transport.__all__``; a method is public when its
name does not start with ``_`` and it is defined by opsreg (in ``actors`` or ``transport``),
not inherited from pykka, msgspec or the standard library. ``help(RegistryClient)`` shows
them (checked too).
"""

from __future__ import annotations

import inspect
import pydoc
from collections.abc import Iterator
from typing import Any

import actors
import transport
from transport import RegistryClient


def _ours(obj: Any) -> bool:
    module = getattr(obj, "__module__", "") or ""
    return module.split(".")[0] in {"actors", "transport"}


def _public_members(cls: type) -> Iterator[tuple[str, Any]]:
    for klass in cls.__mro__:
        if not _ours(klass):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_"):
                continue
            if isinstance(value, staticmethod | classmethod):
                value = value.__func__
            if isinstance(value, property) or inspect.isfunction(value):
                yield f"{klass.__name__}.{name}", value


def undocumented() -> list[str]:
    missing: list[str] = []
    for module in (actors, transport):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj):
                if not _ours(obj):
                    continue
                if not (obj.__dict__.get("__doc__") or "").strip():
                    missing.append(f"{module.__name__}.{name}")
                for member, value in _public_members(obj):
                    if not (inspect.getdoc(value) or "").strip():
                        missing.append(f"{module.__name__}.{name}: {member}")
            elif callable(obj) and _ours(obj) and not (obj.__doc__ or "").strip():
                missing.append(f"{module.__name__}.{name}")
    return sorted(set(missing))


#: transport/workers.py belongs to the pool's work of issue 13 (merged separately): its
#: two undocumented methods are listed here until that merge documents them.
PENDING: set[str] = set()


def test_every_public_class_and_method_has_a_docstring() -> None:
    assert set(undocumented()) <= PENDING


def test_help_of_the_client_shows_its_methods() -> None:
    text = pydoc.render_doc(RegistryClient, renderer=pydoc.plaintext)
    assert "register_operation" in text
    assert RegistryClient.__doc__ and RegistryClient.__doc__.splitlines()[0] in text
    for name in ("complete_operation", "register_watcher", "close", "wait_all", "snapshot"):
        first = (inspect.getdoc(getattr(RegistryClient, name)) or "").splitlines()
        assert first and first[0] in text, name
