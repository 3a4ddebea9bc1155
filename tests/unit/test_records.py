"""The records that cross process boundaries are keyword-only and frozen; worker configs survive
the trip to a Ray Train worker; the shared trainer fields have one owner."""

import dataclasses
import json

import pytest
from pydantic import ValidationError

from cot_ray.config import ModelConfig, ReflectiveConfig, RLConfig, TrainConfig, TrainerConfig
from cot_ray.evaluate import EvalRow
from cot_ray.rl.experience import Sampled, StepSequence
from cot_ray.rl.records import LearnerBatch, LearnerChannels, Published, Ready, RolloutBatch, Timings, UpdateStats
from cot_ray.train.harness import lr_at
from cot_ray.train.workers import LearnerWorkerConfig, StageWorkerConfig, WorkerConfig
from cot_ray.verify.verifier import Score

RECORDS = [StepSequence, Sampled, Score, RolloutBatch, Timings, LearnerBatch, LearnerChannels, Ready, UpdateStats,
           Published, EvalRow]


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
def test_records_take_keywords_only_and_are_frozen(cls):
    fields = dataclasses.fields(cls)
    assert fields and all(f.kw_only for f in fields)
    with pytest.raises(TypeError):
        cls(*range(len(fields)))  # positional construction is refused
    record = cls(**{f.name: None for f in fields})
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(record, fields[0].name, 1)


def _stage_worker() -> StageWorkerConfig:
    reflective = ReflectiveConfig(steps=7, lr=3e-4, warmup_steps=2, precision="bf16", reject_label_weight=4.0)
    return StageWorkerConfig(stage="reflective-sft", out_dir="/tmp/x", init="/tmp/init", steps=7,
                             trainer=TrainConfig.model_validate(reflective.model_dump(include=set(TrainConfig.model_fields))),
                             model=ModelConfig(size="tiny"), steps_per_epoch=3, reject_label_weight=4.0)


def test_worker_configs_round_trip_through_json_and_the_pydantic_model():
    learner = LearnerWorkerConfig(out_dir="/tmp/rl", init="/tmp/init", steps=5,
                                  trainer=RLConfig(algorithm="ppo", warmup_steps=3, resources={"trainer": 1.0}))
    for worker in (_stage_worker(), learner):
        loop_config = worker.loop_config(channels="a live handle")
        sent = json.loads(json.dumps(loop_config.pop("worker")))  # plain data, as Ray Train ships it
        back = type(worker).of({"worker": sent, **loop_config})
        assert back == worker and type(back.trainer) is type(worker.trainer)
    assert StageWorkerConfig.of(_stage_worker().loop_config()).trainer.precision == "bf16"


def test_a_worker_config_with_a_wrong_or_missing_field_fails_on_the_worker():
    sent = _stage_worker().loop_config()["worker"]
    with pytest.raises(ValidationError, match="lr"):
        StageWorkerConfig.of({"worker": {**sent, "trainer": {**sent["trainer"], "lr": -1.0}}})
    with pytest.raises(ValidationError, match="steps_per_epoch"):
        StageWorkerConfig.of({"worker": {k: v for k, v in sent.items() if k != "steps_per_epoch"}})
    with pytest.raises(ValidationError):
        WorkerConfig.of({"worker": {**sent, "typo": 1}})


def test_rl_and_the_stages_share_the_trainer_fields_and_their_constraints():
    shared = set(TrainerConfig.model_fields)
    assert {"lr", "min_lr", "warmup_steps", "grad_clip", "precision", "workers"} <= shared
    assert shared <= set(RLConfig.model_fields) and shared <= set(TrainConfig.model_fields)
    for field, bad in (("lr", 0.0), ("warmup_steps", 0), ("workers", 0), ("checkpoint_every", 0)):
        with pytest.raises(ValidationError, match=field):
            RLConfig(**{field: bad})  # RL's own defaults keep the shared constraints
    rl = RLConfig()
    assert (rl.lr, rl.min_lr, rl.workers, rl.warmup_steps, rl.checkpoint_every) == (5e-5, 1e-5, 1, 1, 10)
    assert lr_at(0, RLConfig(warmup_steps=4), 10) == pytest.approx(5e-5 / 4)  # the learner's warm-up is the config's
