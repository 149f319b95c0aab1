"""A registry process for crash tests: it drives operations as fast as it can and
reports over stdout, one line each, what it tried and what was acknowledged.

    python -m tests.persistence.crash_child DATA_DIR SEED THREADS [MAX_COMPLETED]

Lines: ``ready``, ``try <id> <outcome>`` before a terminal call, ``ack <id>`` after
its acknowledgement. The parent kills it with SIGKILL at a moment of its choosing.
"""

from __future__ import annotations

import random
import sys
import threading

from actors import OperationId, OperationKind, OperationResult, OperationSpec, OpsRegistry

OUTCOMES = ("completed", "failed", "cancelled", "aborted")


def main() -> None:
    data_dir, seed, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    # A small MAX_COMPLETED makes compactions frequent (each waits for 2 x retained rows).
    max_completed = int(sys.argv[4]) if len(sys.argv) > 4 else 1_000_000
    reg = OpsRegistry.open(data_dir, max_completed=max_completed, compact_every=150 + seed * 7)
    out_lock = threading.Lock()

    def say(line: str) -> None:
        with out_lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def work(t: int) -> None:
        rng = random.Random(seed * 100 + t)
        while True:
            op = OperationId.new()
            reg.register_operation(
                OperationSpec(
                    id=op,
                    kind=OperationKind.BACKGROUND_TOOL_OP,
                    owner_session_id="crash",
                    display_name=f"t{t}",
                    source_label="crash-test",
                )
            )
            choice = rng.choice(OUTCOMES)
            if choice != "aborted":
                reg.provisioning_succeeded(op)
            if rng.random() < 0.1:
                continue  # leave some in flight on purpose
            say(f"try {op} {choice}")
            if choice == "completed":
                reg.complete_operation(op, OperationResult(id=op, content=f"r-{op}"))
            elif choice == "failed":
                reg.fail_operation(op, f"e-{op}")
            elif choice == "cancelled":
                reg.cancel_operation(op, f"c-{op}")
            else:
                reg.abort_provisioning(op, f"a-{op}")
            say(f"ack {op}")

    say("ready")
    workers = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


if __name__ == "__main__":
    main()
