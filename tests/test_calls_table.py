"""The method table (actors/calls.py) and everything derived from it agree.

The codec, the shared ``RegistryCalls`` surface (so ``OpsRegistry`` and
``RegistryClient``), the registry actor's dispatch, the server's admin list,
the conformance suite and docs/protocol.md's method table: each is checked
against ``calls.METHODS`` here, so a method added to one and not the others
fails this file.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import msgspec
import pytest

from actors import InvalidArgument, OpsRegistry, calls
from actors.api import RegistryCalls
from actors.registry import RegistryActor, handlers
from transport import RegistryClient, codec
from transport.admission import ADMIN_METHODS

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[1]


def _params(func: object) -> list[inspect.Parameter]:
    return list(inspect.signature(func).parameters.values())[1:]  # type: ignore[arg-type]


def test_table_is_consistent() -> None:
    assert calls.METHODS.keys() >= calls.READ_ONLY
    assert calls.METHODS.keys() >= calls.FUTURE
    assert calls.ADMIN <= calls.CHANGES_STATE  # an admin method that changed nothing needs no key
    assert calls.METHODS.keys() - calls.READ_ONLY == calls.CHANGES_STATE
    assert not calls.INTERNAL & calls.METHODS.keys()
    for m in calls.METHODS.values():
        names = [a.name for a in m.args]
        assert len(set(names)) == len(names), m.name
        # only a tail may be optional
        assert all(a.optional for a in m.args[len(m.args) - m.optional_tail :]), m.name
        assert not any(a.optional for a in m.args[: len(m.args) - m.optional_tail]), m.name


def test_a_name_not_listed_as_read_only_is_state_changing() -> None:
    assert calls.changes_state("a_method_added_later")
    assert calls.changes_state("complete_operation")
    assert not calls.changes_state("snapshot")


def test_registry_calls_surface_matches_the_table() -> None:
    public = {
        name
        for name, value in vars(RegistryCalls).items()
        if not name.startswith("_") and callable(value)
    }
    assert public == calls.METHODS.keys()
    for name, m in calls.METHODS.items():
        params = _params(getattr(RegistryCalls, name))
        assert [p.name for p in params] == [a.name for a in m.args], name
        for p, a in zip(params, m.args, strict=True):
            assert (p.default is None) == a.optional, (name, p.name)
            assert a.optional or p.default is inspect.Parameter.empty, (name, p.name)


@pytest.mark.parametrize("cls", [OpsRegistry, RegistryClient])
def test_both_ways_of_reaching_a_registry_inherit_the_surface(cls: type) -> None:
    assert issubclass(cls, RegistryCalls)
    for name, m in calls.METHODS.items():
        params = _params(getattr(cls, name))
        # an override may add optional keywords (OpsRegistry's epoch_id), never change these
        assert [p.name for p in params[: len(m.args)]] == [a.name for a in m.args], (cls, name)
        assert all(p.default is not inspect.Parameter.empty for p in params[len(m.args) :])


def test_the_codec_decodes_exactly_the_table() -> None:
    for name, m in calls.METHODS.items():
        short = len(m.args) - m.optional_tail
        if short == 0:
            assert codec.decode_args(name, msgspec.Raw(msgspec.msgpack.encode([]))) == (
                (None,) * len(m.args)
            )
        else:  # too few arguments: refused as this method's, not as an unknown one
            with pytest.raises(InvalidArgument) as err:
                codec.decode_args(name, msgspec.Raw(msgspec.msgpack.encode([])))
            assert "unknown method" not in str(err.value), name
    with pytest.raises(InvalidArgument, match="unknown method"):
        codec.decode_args("not_in_the_table", msgspec.Raw(msgspec.msgpack.encode([])))


def test_the_registry_dispatches_exactly_the_table() -> None:
    defined = {name[4:] for name in dir(RegistryActor) if name.startswith("_do_")}
    assert defined == calls.METHODS.keys() | calls.INTERNAL
    for name, m in calls.METHODS.items():
        handler = getattr(RegistryActor, "_do_" + name)
        # self, reply, then every argument the wire may deliver (missing optionals arrive as None)
        inspect.signature(handler).bind(None, None, *([None] * len(m.args)))


def test_a_table_entry_without_a_handler_fails_when_the_registry_starts() -> None:
    class Incomplete:
        pass

    with pytest.raises(TypeError, match="no handler _do_register_operation"):
        handlers(Incomplete())


def test_admin_methods_are_the_tables() -> None:
    assert (
        ADMIN_METHODS == calls.ADMIN == {"terminate_owner", "collect_completed", "cancel_wait_all"}
    )


def test_protocol_md_method_table_is_the_generated_one() -> None:
    doc = (ROOT / "docs" / "protocol.md").read_text()
    assert calls.method_table_markdown() in doc, (
        "docs/protocol.md §6 differs from actors/calls.py: paste `opsreg methods`"
    )


def test_conformance_exercises_every_method() -> None:
    from transport.conformance import _errors, _lifecycle

    text = inspect.getsource(_lifecycle) + inspect.getsource(_errors)
    for name in calls.METHODS:
        assert f'"{name}"' in text, f"conformance never calls {name}"


def test_opsreg_methods_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    from transport.cli import main

    assert main(["methods"]) == 0
    assert capsys.readouterr().out == calls.method_table_markdown()
