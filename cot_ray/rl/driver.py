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
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cot_ray.config import PipelineConfig, RLConfig
from cot_ray.layout import is_complete
from cot_ray.mtp import Trajectory
from cot_ray.mtp.trajectory import reflection_frequency
from cot_ray.rl.experience import shard, trajectory_sequences, truncate_at_first_error
from cot_ray.rl.losses import group_advantages
from cot_ray.tasks import get_task
from cot_ray.tracking import MetricsLog
from cot_ray.train.checkpoints import latest_checkpoint, load_trainer_state, model_folder

log = logging.getLogger(__name__)
CONTROL_TIMEOUT_S = 1800.0
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


def query_groups(trajs: list[Trajectory]) -> list[list[int]]:
    """The indices of each query's samples (a GRPO group), queries in order of first appearance.
    Groups come from the problems' identity, not from positions in the batch."""
    groups: dict[str, list[int]] = {}
    for i, t in enumerate(trajs):
        groups.setdefault(t.problem.query, []).append(i)
    return list(groups.values())


def informative_groups(rewards: list[float], groups: list[list[int]]) -> list[bool]:
    """For each group: do its rewards differ?

    A group whose samples all earned the same reward has zero GRPO advantage everywhere: it
    costs a learner pass and teaches nothing (DAPO's dynamic sampling drops such groups).
    """
    return [max(rewards[i] for i in g) != min(rewards[i] for i in g) for g in groups]


class GroupFilter:
    """Collects sampled groups for one update, keeping informative ones first (dynamic filtering).

    ``add`` takes one sampling round (trajectories, rewards, first errors; grouped by query);
    ``full`` says when ``wanted`` informative groups are in; ``batch`` returns ``wanted`` groups,
    informative ones first, flat ones filling any gap, flattened back to per-sample lists.
    Without ``filtering`` every group counts as kept, in sampling order.
    """

    def __init__(self, wanted: int, filtering: bool) -> None:
        self.wanted, self.filtering = wanted, filtering
        self.kept: list[tuple] = []
        self.flat: list[tuple] = []
        self.seen = self.n_flat = 0

    def add(self, trajs: list, rewards: list[float], first_errors: list) -> None:
        groups = query_groups(trajs)
        for g, informative in zip(groups, informative_groups(rewards, groups)):
            (self.kept if informative or not self.filtering else self.flat).append(
                ([trajs[i] for i in g], [rewards[i] for i in g], [first_errors[i] for i in g]))
            self.seen, self.n_flat = self.seen + 1, self.n_flat + (not informative)

    @property
    def full(self) -> bool:
        return len(self.kept) >= self.wanted

    @property
    def flat_share(self) -> float:
        """Share of all sampled groups whose rewards were all equal."""
        return self.n_flat / max(self.seen, 1)

    def batch(self) -> tuple[list, list[float], list]:
        groups = (self.kept + self.flat)[:self.wanted]
        return ([t for g in groups for t in g[0]], [r for g in groups for r in g[1]],
                [e for g in groups for e in g[2]])


def build_experience(trajs: list[Trajectory], rewards: list[float], first_errors: list[int | None],
                     rl: RLConfig) -> list:
    import torch

    groups = torch.zeros(len(trajs), dtype=torch.long)
    for k, members in enumerate(query_groups(trajs)):
        groups[members] = k
    adv = group_advantages(torch.tensor(rewards), groups).tolist()
    seqs = []
    for i, (t, r, a, fe) in enumerate(zip(trajs, rewards, adv, first_errors)):
        if rl.early_truncation:
            t = truncate_at_first_error(t, fe)
        seqs += trajectory_sequences(t, i, a, r)
    return seqs


class LearnerError(RuntimeError):
    """The RL learner failed beyond its failure budget (``rl.max_failures``), or published nothing."""


class _Learner:
    """The Ray Train learner, running ``fit()`` in a background thread, fed through queues.

    Recovery: Ray Train restarts a worker group that lost a worker (``rl.max_failures`` times);
    the new group resumes from the learner's latest checkpoint and announces its version with a
    ``ready`` message. The driver keeps every batch it pushed since the learner's last checkpoint
    (object refs, by the version each updates) and resends them on ``ready``; the learner skips
    batches that are not for its current version, so none is lost or applied twice. Versions it
    publishes again while catching up are dropped here.
    """

    def __init__(self, rl: RLConfig, init: str, out: Path) -> None:
        import ray
        from ray.train import FailureConfig, RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer
        from ray.util.queue import Queue
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from cot_ray.rl.learner import rl_loop_per_worker
        from cot_ray.train.rendezvous import torch_config

        # the queues live on the driver's node (as Ray Train's controller does): losing another node
        # never loses the learner's inbox or what it published
        here = {"num_cpus": 0, "scheduling_strategy": NodeAffinitySchedulingStrategy(
            ray.get_runtime_context().get_node_id(), soft=False)}
        self.queues = [Queue(maxsize=2, actor_options=here) for _ in range(rl.workers)]
        self.control = Queue(actor_options=here)
        self.history: dict[int, Any] = {}  # base version -> object ref of its shards
        self.published = -1  # the newest version handed to the driver
        self.starts = 0  # ready messages seen: 1 + the restarts
        self.last_checkpoint = 0  # the newest version the learner announced it checkpoints
        self.max_failures = rl.max_failures
        loop_cfg = {**rl.model_dump(), "init": init, "out_dir": str(out), "threads": rl.cpus_per_worker,
                    "queues": self.queues, "control": self.control, "steps": rl.updates, "warmup_steps": 1,
                    "stage": "rl"}
        self.trainer = TorchTrainer(
            rl_loop_per_worker, train_loop_config=loop_cfg,
            scaling_config=ScalingConfig(num_workers=rl.workers, use_gpu=rl.use_gpu,
                                         resources_per_worker={"CPU": rl.cpus_per_worker, **rl.resources}),
            torch_config=torch_config(rl.use_gpu),
            run_config=RunConfig(name="rl", storage_path=str(out / "ray_results"),
                                 failure_config=FailureConfig(max_failures=rl.max_failures)))
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._fit, daemon=True, name="rl-learner")
        self.thread.start()

    def _fit(self) -> None:
        try:
            result = self.trainer.fit()
            if result.error:
                self.error = result.error
        except BaseException as err:  # surfaced by poll()
            self.error = err

    def _check(self) -> None:
        if self.error is not None:
            raise LearnerError(f"the RL learner failed ({self.starts - 1} restart(s) of its worker group, "
                               f"budget rl.max_failures={self.max_failures}): {self.error}")

    def _put(self, q, item) -> None:
        """``q.put`` that gives up (raising) as soon as the learner has failed for good."""
        from ray.util.queue import Full

        deadline = time.monotonic() + CONTROL_TIMEOUT_S
        while True:
            self._check()
            try:
                return q.put(item, timeout=5.0)
            except Full:
                if time.monotonic() >= deadline:
                    raise LearnerError(f"the RL learner took no batch for {CONTROL_TIMEOUT_S}s") from None

    def push(self, base: int, shards: list[list]) -> None:
        """Send the batch that updates version ``base`` to every learner worker."""
        import ray

        self.history[base] = ray.put(shards)
        for q in self.queues:
            self._put(q, {"base": base, "ref": self.history[base]})

    def _resend(self, version: int) -> None:
        """A learner group started at ``version``: send it every batch pushed from there on."""
        pending = sorted(b for b in self.history if b >= version)
        if pending and pending[0] != version:
            raise LearnerError(f"the RL learner restarted at version {version}, but the driver kept batches "
                               f"only from version {pending[0]}")
        if self.starts > 1:
            log.warning("rl: the learner's worker group restarted (%d of %d) at version %d; resending %d batch(es)",
                        self.starts - 1, self.max_failures, version, len(pending))
        for b in pending:
            for q in self.queues:
                self._put(q, {"base": b, "ref": self.history[b]})

    def poll(self, timeout: float | None) -> dict[str, Any] | None:
        """The next newly published version, or None if none arrives within ``timeout``."""
        from ray.util.queue import Empty

        deadline = time.monotonic() + (timeout if timeout is not None else CONTROL_TIMEOUT_S)
        while True:
            self._check()
            try:
                msg = self.control.get(timeout=min(5.0, max(0.0, deadline - time.monotonic())) or 0.01)
            except Empty:
                if time.monotonic() >= deadline:
                    if timeout is None:
                        raise LearnerError(f"the RL learner published nothing for {CONTROL_TIMEOUT_S}s") from None
                    return None
                continue
            if "ready" in msg:
                self.starts += 1
                self._resend(msg["ready"])
                continue
            if msg["checkpointed"]:  # published before it is saved: a restart resumes at the previous one
                self.history = {b: r for b, r in self.history.items() if b >= self.last_checkpoint}
                self.last_checkpoint = msg["version"]
            if msg["version"] > self.published:
                self.published = msg["version"]
                return msg

    def close(self) -> None:
        for q in self.queues:
            self._put(q, None)
        self.thread.join(timeout=600)
        self._check()


def run_rl(config: PipelineConfig, init: str, mode: str, out: str | Path, progress: bool = True,
           on_done: Callable[[Any], Any] | None = None) -> Path:
    """RL-tune the policy at ``init`` through the MTP or RMTP into ``out``; returns ``out/final``.

    Resumes from ``out``'s latest checkpoint (same update number, same data); the reference
    policy stays ``init``. ``on_done(pool)`` runs after the last update, while the rollout pool
    (holding the final weights) is still up: evaluation without another engine start.
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
    _Controller(config, init, mode, out, start, str(latest or init)).run(progress, on_done)
    return out / "final"


class _Controller:
    """The single controller of one RL run. Each update reads top to bottom in :meth:`run`:
    :meth:`sample` (pool) -> :meth:`score` (reward actor) -> :meth:`learn` (push to the learner,
    wait for its new version) -> :meth:`sync` (new weights into the pool) -> one metrics row."""

    def __init__(self, config: PipelineConfig, init: str, mode: str, out: Path, start: int, weights: str) -> None:
        from cot_ray.raycluster import ensure_ray
        from cot_ray.rollout.pool import pool_from_config
        from cot_ray.verify import RewardModel, actor_class

        self.config, self.rl, self.mode, self.start = config, config.rl, mode, start
        ensure_ray()
        self.reward = actor_class(RewardModel, num_cpus=0).remote()
        self.pool = pool_from_config(config.rollout, weights, num_workers=self.rl.rollout_workers,
                                     worker_cpus=self.rl.rollout_cpus, version=start)
        self.learner = _Learner(self.rl, init, out)
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
            self.pool.wait_ready()
            version, t_last = self.start, time.perf_counter()
            batch = self.sample(self.start)
            for update in range(self.start, rl.updates):
                dropped = 0
                while batch["version"] < version - rl.max_staleness:  # async only: too stale, resample
                    dropped += 1
                    batch = self.sample(update)
                following = None
                if rl.asynchronous and update + 1 < rl.updates:
                    self.learner.push(update, shard(batch["seqs"], rl.workers))
                    following = self.sample(update + 1)  # overlaps with the learner working on this batch
                    msg = self.learner.poll(None)
                else:
                    msg = self.learn(update, batch)
                sync_s = self.sync(msg)
                version = msg["version"]
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
            self.pool.shutdown()
            ray.kill(self.reward)

    def sample(self, update: int) -> dict[str, Any]:
        """Sample and score one update's batch. GRPO with ``filter_flat_groups`` keeps only groups
        whose rewards differ, drawing fresh queries (up to ``max_resample_rounds`` more times)
        until it has ``queries_per_update`` of them; if it never does, flat groups fill the
        batch. Reward and accuracy are logged on the first round's queries alone, an unbiased
        sample of the training distribution."""
        rl = self.rl
        filtering = rl.algorithm == "grpo" and rl.filter_flat_groups
        groups, times = GroupFilter(rl.queries_per_update, filtering), [0.0, 0.0]
        for round_ in range(rl.max_resample_rounds + 1 if filtering else 1):
            t0 = time.perf_counter()
            task_name, problems = queries(self.config, update, round_)
            trajs = self.pool.run(task_name, problems, rl.execution(self.mode, update, round_))
            t1 = time.perf_counter()
            rewards, first_errors = self.score(trajs)
            times[0], times[1] = times[0] + t1 - t0, times[1] + time.perf_counter() - t1
            if round_ == 0:
                logged = (trajs, rewards)
            groups.add(trajs, rewards, first_errors)
            if groups.full:
                break
        trajs, rewards, first_errors = groups.batch()
        return {"trajs": logged[0], "rewards": logged[1], "seqs": build_experience(trajs, rewards, first_errors, rl),
                "version": min(t.policy_version for t in trajs), "generate_s": times[0], "score_s": times[1],
                "flat_groups": groups.flat_share, "rounds": round_ + 1}

    def score(self, trajs: list[Trajectory]) -> tuple[list[float], list[int | None]]:
        """The reward actor's outcome rewards, and the index of each trajectory's first wrong step
        (early truncation of the experience)."""
        import ray

        from cot_ray.verify.verifier import MAX_RESTARTS

        try:
            return tuple(ray.get([self.reward.rewards.remote(trajs), self.reward.first_errors.remote(trajs)]))
        except ray.exceptions.RayActorError as err:  # restarted and retried MAX_RESTARTS times already
            raise RuntimeError(f"the reward actor is gone (its restart budget is {MAX_RESTARTS}): {err}") from err

    def learn(self, update: int, batch: dict[str, Any]) -> dict[str, Any]:
        """Stream the batch's experience to the learner workers; wait for the version it makes."""
        self.learner.push(update, shard(batch["seqs"], self.rl.workers))
        return self.learner.poll(None)

    def sync(self, msg: dict[str, Any]) -> float:
        """Load the learner's new weights into every rollout worker; returns the seconds it took."""
        t0 = time.perf_counter()
        self.pool.update_weights(msg["path"], msg["version"])
        return time.perf_counter() - t0

    @staticmethod
    def row(update: int, batch: dict[str, Any], msg: dict[str, Any], dropped: int, sync_s: float,
            step_s: float) -> dict[str, Any]:
        """The metrics row of one update (``FIELDS``)."""
        from cot_ray.verify import verification_counts

        counts = verification_counts(batch["trajs"])
        tokens = sum(t.n_tokens for t in batch["trajs"])
        return {
            "update": update + 1, "policy_version": batch["version"],
            "reward": sum(batch["rewards"]) / len(batch["rewards"]),
            "accuracy": sum(t.correct for t in batch["trajs"]) / len(batch["trajs"]),
            "reflection": reflection_frequency(batch["trajs"]), "e_plus": counts.e_plus, "e_minus": counts.e_minus,
            "kl": msg["kl"], "entropy": msg["entropy"], "clip_frac": msg["clip_frac"], "loss": msg["loss"],
            "value_loss": msg["value_loss"], "lr": msg["lr"], "tokens": tokens,
            "dropped": dropped, "flat_groups": batch["flat_groups"], "rounds": batch["rounds"],
            "generate_s": batch["generate_s"], "score_s": batch["score_s"], "learn_s": msg["learn_s"],
            "sync_s": sync_s + msg["save_s"], "learner_idle_s": msg["idle_s"], "step_s": step_s,
            "tokens_per_s": tokens / max(step_s, 1e-9),
        }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"
