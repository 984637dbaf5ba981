"""The realign pool's slot, written into the instance before any run can claim it.

Dagster creates a pool's limit row lazily, when a step of the pool first asks for a slot. On
PostgreSQL two runs doing that at the same moment collide: both insert the row, Dagster catches
the unique violation inside the same transaction, and PostgreSQL refuses the statement that
follows it, so one run fails before its promotion step starts (SQLite does not abort the
transaction, which is why this only shows on PostgreSQL). A limit set explicitly is never
initialized again, so setting it once, from one process, before runs start removes the race.
It also keeps the one-slot guarantee on an instance whose config has no default pool limit.
"""

from pathlib import Path

import dagster as dg

from judgeloop.run_names import REALIGN_POOL

SLOTS = 1


def ensure_realign_pool(instance: dg.DagsterInstance) -> bool:
    """Give the realign pool its one slot unless the instance already has a limit for it (an
    operator's own choice is kept); True when it was set here."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return False
    if REALIGN_POOL in storage.get_concurrency_keys():
        return False
    storage.set_concurrency_slots(REALIGN_POOL, SLOTS)
    return True


def ensure_realign_pool_at(dagster_home: Path) -> bool:
    """``ensure_realign_pool`` on the instance configured in ``dagster_home``."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        return ensure_realign_pool(instance)
