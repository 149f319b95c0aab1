"""Test hooks and back ends: not the public API, but stable enough for tests and benches.

* ``Lifecycle``: the pure rules, drivable without threads.
* ``FaultPlan``: failures and stalls a store applies to its next commits.
* ``MemoryStore``, ``SqliteStore``: the store back ends behind ``OpsRegistry``.
"""

from actors.lifecycle import Lifecycle
from actors.persistence import FaultPlan, MemoryStore
from actors.sqlite_store import SqliteStore

__all__ = ["FaultPlan", "Lifecycle", "MemoryStore", "SqliteStore"]
