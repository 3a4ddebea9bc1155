"""Stage IV's single controller: sample -> score -> stream to the learner -> sync weights.

    rollout pool (vLLM actors)  --trajectories-->  driver  --RewardModel actor-->  rewards
    driver  --experience (object refs on per-worker Ray queues)-->  learner (Ray Train, DDP)
    learner --(version, weights folder) on the control queue-->  driver --reload_weights--> pool

Synchronous mode samples each batch with the newest weights (on-policy). Asynchronous mode
samples batch k+1 while the learner trains on batch k, and drops a batch whose policy version
is more than ``max_staleness`` versions behind the learner (the clipped importance ratio, taken
against the sampling log-probs, corrects the rest). Every update appends a row of metrics to
``metrics.csv``: reward, accuracy, reflection frequency, e+/e-, KL, entropy, the share of
sampled GRPO groups whose rewards were all equal (``flat_groups``, dropped and replaced by fresh
queries: dynamic filtering) and the time split generate / score / learn / weight-sync.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cot_ray.config import PipelineConfig
from cot_ray.layout import is_complete
from cot_ray.mtp import Trajectory
from cot_ray.mtp.trajectory import reflection_frequency
from cot_ray.profile import phase
from cot_ray.rl.experience import GroupFilter, Sampled, build_experience, shard
from cot_ray.rl.learner_group import LearnerGroup
from cot_ray.rl.records import Published, RolloutBatch, Timings
from cot_ray.tasks import get_task
from cot_ray.tracking import MetricsLog
from cot_ray.train.checkpoints import latest_checkpoint, load_trainer_state, model_folder
from cot_ray.verify.verifier import Score

if TYPE_CHECKING:
    from cot_ray.rollout.pool import RolloutPool

log = logging.getLogger(__name__)
FIELDS = ["update", "policy_version", "reward", "accuracy", "reflection", "e_plus", "e_minus", "kl", "entropy",
          "clip_frac", "loss", "value_loss", "lr", "tokens", "dropped", "flat_groups", "rounds", "generate_s",
          "score_s", "learn_s", "sync_s", "learner_idle_s", "step_s", "tokens_per_s"]


def queries(config: PipelineConfig, update: int, round_: int = 0) -> tuple[str, list]:
    """The problems of update ``update``: a task (round robin) and its queries, each repeated G
    times in a row. ``round_`` > 0 draws fresh queries to replace groups the filter dropped.
    Depends only on (seed, update, round), so a resumed run sees the same data. Queries come
    from the training distribution (the corpus's) and never from the held-out problems."""
    from cot_ray.data.splits import held_out_of, make_problem

    rl = config.rl
    task_name = config.corpus.tasks[update % len(config.corpus.tasks)]
    task = get_task(task_name)
    first = (update * (rl.max_resample_rounds + 1) + round_) * rl.queries_per_update
    index = [(first + i) % rl.query_pool if rl.query_pool else first + i for i in range(rl.queries_per_update)]
    exclude = held_out_of(config, task_name)
    base = [make_problem(task, rl.difficulty or config.corpus.difficulty, rl.seed, i, "rl", exclude) for i in index]
    return task_name, [dataclasses.replace(p, sample_id=k) for p in base for k in range(rl.group_size)]


def run_rl(config: PipelineConfig, init: str, mode: str, out: str | Path, progress: bool = True,
           on_done: Callable[[Any], Any] | None = None, pool: RolloutPool | None = None) -> Path:
    """RL-tune the policy at ``init`` through the MTP or RMTP into ``out``; returns ``out/final``.

    Resumes from ``out``'s latest checkpoint (same update number, same data); the reference
    policy stays ``init``. ``on_done(pool)`` runs after the last update, while the rollout pool
    (holding the final weights) is still up: evaluation without another engine start. ``pool``:
    a running pool of ``rl.rollout``'s size to roll out on (its weights are replaced, and it is
    left running); by default the run starts one of its own and shuts it down.
    """
    init = model_folder(init)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    latest = latest_checkpoint(out)
    start = 0
    if latest is not None:
        start = load_trainer_state(latest)["step"]
        log.info("rl: resuming from %s at update %d", latest, start)
    if start >= config.rl.updates and is_complete(out / "final"):
        return out / "final"
    _Controller(config, init, mode, out, start, str(latest or init), pool).run(progress, on_done)
    return out / "final"


class _Controller:
    """The single controller of one RL run. Each update reads top to bottom in :meth:`run`:
    :meth:`sample` (pool) -> :meth:`score` (reward actor) -> :meth:`learn` (push to the learner,
    wait for its new version) -> :meth:`sync` (new weights into the pool) -> one metrics row."""

    def __init__(self, config: PipelineConfig, init: str, mode: str, out: Path, start: int, weights: str,
                 pool: RolloutPool | None) -> None:
        from cot_ray.raycluster import ensure_ray
        from cot_ray.rollout.pool import pool_from_config
        from cot_ray.verify import RewardModel, actor_class

        self.config, self.rl, self.mode, self.start = config, config.rl, mode, start
        ensure_ray()
        self.reward = actor_class(RewardModel, num_cpus=0).remote()
        self.owns_pool = pool is None
        if pool is None:
            self.pool = pool_from_config(config.rollout.sized(self.rl.rollout), weights, version=start)
        else:
            self.pool = pool
            pool.update_weights(weights, start)
        self.learner = LearnerGroup(self.rl, init, out)
        self.metrics = MetricsLog(out, FIELDS, start)

    def run(self, progress: bool, on_done: Callable[[Any], Any] | None) -> None:
        import ray
        from tqdm import tqdm

        rl = self.rl
        bar = tqdm(total=rl.updates, initial=self.start, desc=f"rl {rl.algorithm} {self.mode}", unit="update",
                   disable=not progress)
        first: dict[str, Any] | None = None
        t_run = time.perf_counter()
        try:
            with phase("engine start"):
                self.pool.wait_ready()
            version, t_last = self.start, time.perf_counter()
            batch = self.sample(self.start)
            for update in range(self.start, rl.updates):
                dropped = 0
                while batch.version < version - rl.max_staleness:  # async only: too stale, resample
                    dropped += 1
                    batch = self.sample(update)
                following = None
                if rl.asynchronous and update + 1 < rl.updates:
                    self.learner.push(update, shard(batch.experience, rl.workers))
                    following = self.sample(update + 1)  # overlaps with the learner working on this batch
                    msg = self.learner.poll(None)
                else:
                    msg = self.learn(update, batch)
                sync_s = self.sync(msg)
                version = msg.version
                row = self.row(update, batch, msg, dropped, sync_s, time.perf_counter() - t_last)
                t_last = time.perf_counter()
                self.metrics.log(update + 1, row)
                first = first or row
                bar.update(1)
                bar.set_postfix(reward=f"{row['reward']:.3f}", kl=f"{row['kl']:.4f}")
                if update + 1 < rl.updates:
                    batch = following if following is not None else self.sample(update + 1)
            self.learner.close()
            if first is not None:
                log.info("rl %s %s: %d updates in %.0fs; reward %.3f -> %.3f, reflection %s -> %s, flat groups %s",
                         rl.algorithm, self.mode, rl.updates - self.start, time.perf_counter() - t_run,
                         first["reward"], row["reward"], _pct(first["reflection"]), _pct(row["reflection"]),
                         _pct(row["flat_groups"]))
            if on_done is not None:
                on_done(self.pool)
        finally:
            bar.close()
            self.metrics.close()
            if self.owns_pool:
                self.pool.shutdown()
            ray.kill(self.reward)

    def sample(self, update: int) -> RolloutBatch:
        """Sample and score one update's batch. GRPO with ``filter_flat_groups`` keeps only groups
        whose rewards differ, drawing fresh queries (up to ``max_resample_rounds`` more times)
        until it has ``queries_per_update`` of them; if it never does, flat groups fill the
        batch. Reward and accuracy are logged on the first round's queries alone, an unbiased
        sample of the training distribution."""
        rl = self.rl
        filtering = rl.algorithm == "grpo" and rl.filter_flat_groups
        groups, timings, logged = GroupFilter(rl.queries_per_update, filtering), Timings(), None
        for round_ in range(rl.max_resample_rounds + 1 if filtering else 1):
            t0 = time.perf_counter()
            task_name, problems = queries(self.config, update, round_)
            trajs = self.pool.run(task_name, problems, rl.execution(self.mode, update, round_))
            t1 = time.perf_counter()
            sampled = Sampled(trajectories=trajs, scores=self.score(trajs))
            timings += Timings(generate_s=t1 - t0, score_s=time.perf_counter() - t1)
            logged = logged or sampled
            groups.add(sampled)
            if groups.full:
                break
        kept = groups.batch()
        return RolloutBatch(logged=logged.trajectories, scores=logged.scores, experience=build_experience(kept, rl),
                            version=min(t.policy_version for t in kept.trajectories), flat_groups=groups.flat_share,
                            rounds=round_ + 1, timings=timings)

    def score(self, trajs: list[Trajectory]) -> list[Score]:
        """The reward actor's scores: the outcome reward, the first wrong step (early truncation
        of the experience) and the expert's verdict on every step (e+/e-), one verifier pass."""
        import ray

        from cot_ray.verify.verifier import MAX_RESTARTS

        try:
            return ray.get(self.reward.scores.remote(trajs))
        except ray.exceptions.RayActorError as err:  # restarted and retried MAX_RESTARTS times already
            raise RuntimeError(f"the reward actor is gone (its restart budget is {MAX_RESTARTS}): {err}") from err

    def learn(self, update: int, batch: RolloutBatch) -> Published:
        """Stream the batch's experience to the learner workers; wait for the version it makes."""
        self.learner.push(update, shard(batch.experience, self.rl.workers))
        return self.learner.poll(None)

    def sync(self, msg: Published) -> float:
        """Load the learner's new weights into every rollout worker; returns the seconds it took."""
        t0 = time.perf_counter()
        self.pool.update_weights(msg.path, msg.version)
        return time.perf_counter() - t0

    @staticmethod
    def row(update: int, batch: RolloutBatch, msg: Published, dropped: int, sync_s: float,
            step_s: float) -> dict[str, Any]:
        """The metrics row of one update (``FIELDS``)."""
        from cot_ray.verify import VerificationCounts
        from cot_ray.verify.metrics import step_counts

        trajs, rewards = batch.logged, [s.reward for s in batch.scores]
        counts = sum((step_counts(t.steps, s.truth) for t, s in zip(trajs, batch.scores)), VerificationCounts())
        tokens = sum(t.n_tokens for t in trajs)
        return {
            "update": update + 1, "policy_version": batch.version, "reward": sum(rewards) / len(rewards),
            "accuracy": sum(t.correct for t in trajs) / len(trajs),
            "reflection": reflection_frequency(trajs), "e_plus": counts.e_plus, "e_minus": counts.e_minus,
            **dataclasses.asdict(msg.stats), "lr": msg.lr, "tokens": tokens,
            "dropped": dropped, "flat_groups": batch.flat_groups, "rounds": batch.rounds,
            **dataclasses.asdict(batch.timings), "learn_s": msg.learn_s,
            "sync_s": sync_s + msg.save_s, "learner_idle_s": msg.idle_s, "step_s": step_s,
            "tokens_per_s": tokens / max(step_s, 1e-9),
        }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"
