"""The run's one rollout pool: reloaded for new weights, resized for RL, restarted only when its
workers change shape (the real pool is exercised by the smoke pipeline's integration test)."""

from cot_ray.config import PoolSize, RolloutConfig
from cot_ray.rollout import keeper as keeper_module
from cot_ray.rollout.keeper import PoolKeeper


class RecordingPool:
    """Records what the keeper asks of a pool: the calls a RolloutPool answers."""

    def __init__(self, rollout: RolloutConfig, checkpoint: str) -> None:
        self.checkpoint, self.version, self.target, self.cpus = checkpoint, 0, rollout.workers, rollout.cpus_per_worker
        self.calls: list[tuple] = []

    def wait_ready(self) -> None:
        self.calls.append(("ready",))

    def update_weights(self, checkpoint: str, version: int) -> float:
        self.checkpoint, self.version = checkpoint, version
        self.calls.append(("reload", checkpoint, version))
        return 0.05

    def scale(self, n: int) -> None:
        self.target = n
        self.calls.append(("scale", n))

    def shutdown(self) -> None:
        self.calls.append(("shutdown",))


def test_new_weights_reload_a_running_pool_and_rl_resizes_it(monkeypatch):
    started = []
    monkeypatch.setattr("cot_ray.rollout.pool.pool_from_config",
                        lambda rollout, checkpoint: started.append(RecordingPool(rollout, checkpoint)) or started[-1])
    keeper = PoolKeeper(RolloutConfig(workers=2))
    pool = keeper.get("stage3/final")
    assert keeper.get("stage3/final") is pool and pool.calls == [("ready",)]  # same weights: nothing to do
    assert keeper.get("control/final") is pool and pool.calls[-1] == ("reload", "control/final", 1)
    assert keeper.get("stage3/final", PoolSize(workers=1)) is pool and pool.target == 1  # RL: a core for the learner
    assert keeper.get(pool.checkpoint) is pool and pool.target == 2  # its evaluation: the full pool again
    assert keeper.starts == 1 and len(started) == 1
    keeper.get("stage3/final", PoolSize(workers=1, cpus_per_worker=2))  # another shape: a new pool
    assert pool.calls[-1] == ("shutdown",) and keeper.starts == 2 and started[-1].cpus == 2
    keeper.close()
    assert started[-1].calls[-1] == ("shutdown",) and keeper.pool is None
    assert keeper_module.with_pool(RolloutConfig(), "a", lambda p: p.checkpoint) == "a"
    assert started[-1].calls[-1] == ("shutdown",)
