"""``list_operations``' orders and name prefix (actors/paging.py), pure: no threads."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from actors import InvalidArgument, OperationId, OperationKind, OperationStatus
from actors.paging import OperationQuery


def records(n: int, seed: int = 7) -> list[SimpleNamespace]:
    rng = random.Random(seed)
    recs = []
    for i in range(n):
        spec = SimpleNamespace(
            id=OperationId.new(),
            display_name=rng.choice(["build", "test", "deploy", "build-docs"]) + f"-{i % 5}",
            owner_session_id="o",
            kind=OperationKind.BACKGROUND_TOOL_OP,
        )
        recs.append(SimpleNamespace(spec=spec, status=OperationStatus.RUNNING))
    rng.shuffle(recs)
    return recs


def page_all(recs: list[SimpleNamespace], limit: int, **query: object) -> list[str]:
    out: list[str] = []
    after = None
    while True:
        page = OperationQuery(None, None, None, limit, after, **query).select(recs)
        out += [r.spec.id for r in page]
        if len(page) < limit:
            return out
        after = (page[-1].spec.display_name, page[-1].spec.id)


@pytest.mark.parametrize("limit", [1, 3, 7, 50])
def test_every_order_pages_to_the_whole_sorted_listing(limit: int) -> None:
    recs = records(40)
    by_id = sorted(r.spec.id for r in recs)
    by_name = [r.spec.id for r in sorted(recs, key=lambda r: (r.spec.display_name, r.spec.id))]
    assert page_all(recs, limit, order="oldest") == by_id
    assert page_all(recs, limit, order="newest") == by_id[::-1]
    assert page_all(recs, limit) == page_all(recs, limit, order="name") == by_name


def test_name_prefix_keeps_only_matching_names_in_every_order() -> None:
    recs = records(60)
    for order in ("name", "newest", "oldest"):
        got = page_all(recs, 4, name_prefix="build-", order=order)
        want = {r.spec.id for r in recs if r.spec.display_name.startswith("build-")}
        assert set(got) == want and len(got) == len(want)


def test_a_bad_order_or_prefix_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match="order must be one of name, newest, oldest"):
        OperationQuery(order="sideways")
    with pytest.raises(InvalidArgument, match="name_prefix must be a string"):
        OperationQuery(name_prefix=5)
