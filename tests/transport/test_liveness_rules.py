"""``transport.liveness``: the server's liveness rules, driven with plain values (no sockets)."""

from __future__ import annotations

import msgspec
import pytest

from actors.errors import LimitExceeded
from actors.registry import Call
from tests.conftest import background_spec
from transport.liveness import Client, Liveness

pytestmark = pytest.mark.timeout(10)


def _beats(live: Liveness, clients: dict[bytes, Client], start: float, end: float) -> list[bytes]:
    """Beat once a second from ``start`` to ``end``; the identities forgotten meanwhile."""
    gone: list[bytes] = []
    t = start
    while t <= end:
        for identity, _ in live.expired(clients, t):
            del clients[identity]
            gone.append(identity)
        t += 1.0
    return gone


def test_a_client_silent_past_the_timeout_expires_at_the_next_beat() -> None:
    live = Liveness(heartbeat_interval=1.0, client_timeout=5.0, max_waits=10)
    clients = {b"quiet": Client(last_seen=0.0), b"chatty": Client(last_seen=0.0)}
    assert _beats(live, clients, 1.0, 5.0) == []
    clients[b"chatty"].last_seen = 5.5
    assert _beats(live, clients, 6.0, 6.0) == [b"quiet"]


def test_a_stalled_server_loop_grants_every_client_a_fresh_timeout() -> None:
    live = Liveness(heartbeat_interval=1.0, client_timeout=5.0, max_waits=10)
    clients = {b"a": Client(last_seen=0.0)}
    assert _beats(live, clients, 1.0, 1.0) == []
    # The next beat comes 60 s later: the loop itself did not run; nobody is forgotten...
    assert live.stalled_for(61.0) == 60.0
    assert live.expired(clients, 61.0) == []
    assert clients[b"a"].last_seen == 61.0
    # ...and a client that stays silent is forgotten one timeout after the stall.
    assert _beats(live, clients, 62.0, 66.0) == []
    assert _beats(live, clients, 67.0, 67.0) == [b"a"]


def test_a_forgotten_identity_is_told_once_by_its_next_pong() -> None:
    live = Liveness(heartbeat_interval=1.0, client_timeout=5.0, max_waits=10)
    new = live.new_client(b"fresh", 0.0)
    assert live.pong(new, "epoch") == "epoch"  # a new client gets the plain shape
    live.remember(b"back")
    back = live.new_client(b"back", 0.0)
    assert live.pong(back, "epoch") == ["epoch", False]
    assert live.pong(back, "epoch") == "epoch"
    assert live.new_client(b"back", 1.0).forgotten is False  # told once


def test_the_wait_budget_counts_requested_and_held_waits() -> None:
    live = Liveness(heartbeat_interval=1.0, client_timeout=5.0, max_waits=2)
    client = Client(last_seen=0.0)
    assert live.admit_wait(client, "snapshot") is None  # not a wait: not counted
    assert live.admit_wait(client, "register_watcher") is None
    assert live.admit_wait(client, "wait_any") is None
    refusal = live.admit_wait(client, "wait_for_advance")
    assert refusal == LimitExceeded("waits held for this client", 2)
    assert client.asked_waits == 2
    with pytest.raises(ValueError):
        Liveness(1.0, 5.0, 0)


def test_only_a_leased_registration_names_its_owner() -> None:
    client = Client(last_seen=0.0)
    plain = Call("register_operation", (background_spec("plain"),), None)
    assert Liveness.leased(b"me", client, "default", plain) is plain
    spec = background_spec("leased")
    leased = Call("register_operation", (msgspec.structs.replace(spec, lease=True),), None)
    routed = Liveness.leased(b"me", client, "default", leased)
    assert routed.method == "register_leased" and routed.args[1] == b"me"
    assert client.leased_in == {"default"}
