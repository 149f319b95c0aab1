"""How long the registry is blocked when one member shared by many ``wait_any`` ends.

Setup (in process, ``OpsRegistry.start()``, no store, so only the wait bookkeeping is
timed): ``--ids`` running operations and ``--waits`` ``wait_any`` calls, each over all
of them. Measured: the round trip of ``complete_operation`` on one member (the actor
settles every wait inside that call, so the round trip is the time the registry
cannot take any other message), then the same for a second member (whose waits
were all settled by the first: what remains is the removal of stale entries).

The issue's size is the default (2,500 waits over 5,000 ids); ``--quick`` is a
smoke-test size.

Usage::

    python bench/waits.py [--quick] [--waits W] [--ids N]

Prints exactly one JSON line on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import time

from _common import log, make_ops

from actors import OpsRegistry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--waits", type=int, default=2500)
    parser.add_argument("--ids", type=int, default=5000)
    args = parser.parse_args()
    if args.quick:
        args.waits, args.ids = 100, 200
    with OpsRegistry.start(max_completed=args.ids) as reg:
        ops = make_ops(args.ids, "bench-waits")
        for spec, _ in ops:
            reg.register_operation(spec)
            reg.provisioning_succeeded(spec.id)
        ids = [spec.id for spec, _ in ops]
        log(f"registering {args.waits} wait_any over {args.ids} ids")
        t0 = time.perf_counter()
        futures = [reg.call_async("wait_any", ids) for _ in range(args.waits)]
        for f in futures:
            f.get(timeout=600)
        register_s = time.perf_counter() - t0
        log("ending one shared member")
        t0 = time.perf_counter()
        reg.complete_operation(ops[0][0].id, ops[0][1])
        first_s = time.perf_counter() - t0
        settled = sum(1 for f in futures if f.get(timeout=0).done())
        t0 = time.perf_counter()
        reg.complete_operation(ops[1][0].id, ops[1][1])
        second_s = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "bench": "waits",
                "waits": args.waits,
                "ids": args.ids,
                "settled": settled,
                "register_s": round(register_s, 3),
                "blocked_first_member_s": round(first_s, 4),
                "blocked_second_member_s": round(second_s, 4),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
