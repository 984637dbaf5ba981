"""The realign pool's one slot is written into the instance up front, not left to Dagster's lazy
initialization at the first claim (which races between two runs on PostgreSQL, see
judgeloop_assets/realign_pool.py; tests/test_postgres_realign_pool.py runs the two runs)."""

import dagster as dg

from judgeloop.run_names import REALIGN_POOL
from judgeloop_assets.realign_pool import ensure_realign_pool, ensure_realign_pool_at
from judgeloop.stack import servers


def _limits(instance) -> dict:
    return {pool.name: (pool.limit, pool.from_default) for pool in instance.event_log_storage.get_pool_limits()}


def test_the_pool_gets_one_explicit_slot_before_any_run():
    with dg.instance_for_test() as instance:  # no default pool limit configured at all
        assert REALIGN_POOL not in _limits(instance)
        assert ensure_realign_pool(instance) is True
        # Explicit (not from the default): Dagster never re-initializes it when a step claims it.
        assert _limits(instance)[REALIGN_POOL] == (1, False)
        assert ensure_realign_pool(instance) is False


def test_an_operators_own_limit_is_kept():
    with dg.instance_for_test() as instance:
        instance.event_log_storage.set_concurrency_slots(REALIGN_POOL, 2)
        assert ensure_realign_pool(instance) is False
        assert _limits(instance)[REALIGN_POOL] == (2, False)


def test_on_the_instance_judgeloop_up_writes(tmp_path):
    servers.write_dagster_yaml(tmp_path)
    assert ensure_realign_pool_at(tmp_path) is True
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert _limits(instance)[REALIGN_POOL] == (1, False)
