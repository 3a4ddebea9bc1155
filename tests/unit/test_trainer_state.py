"""Trainer state is tensors and plain values, read back without unpickling code."""

import pickle
from dataclasses import dataclass

import pytest
import torch

from cot_ray.layout import is_complete
from cot_ray.model import build_model
from cot_ray.train.checkpoints import STATE_FILE, latest_checkpoint, load_trainer_state, save_checkpoint_dir


@dataclass
class _Anything:
    """Stands for any object a pickle could carry (and run code to rebuild)."""

    x: int = 1


def test_the_state_round_trips_without_pickle_and_refuses_objects(tmp_path):
    model = build_model("tiny", max_positions=64)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.tensor([[1, 2, 3]]), labels=torch.tensor([[1, 2, 3]])).loss.backward()
    opt.step()
    critic = torch.nn.Linear(4, 1).state_dict()
    save_checkpoint_dir(tmp_path, 7, model, opt.state_dict(), {"loss": 0.25, "value": critic})
    latest = latest_checkpoint(tmp_path)
    assert latest is not None and latest.name == "step-000007" and is_complete(latest)
    state = load_trainer_state(latest)
    assert state["step"] == 7 and state["loss"] == 0.25
    assert all(torch.equal(state["value"][k], critic[k]) for k in critic)
    restored = torch.optim.AdamW(build_model("tiny", max_positions=64).parameters(), lr=1e-3)
    restored.load_state_dict(state["optimizer"])
    saved = opt.state_dict()["state"]
    assert all(torch.equal(restored.state_dict()["state"][i]["exp_avg"], saved[i]["exp_avg"]) for i in saved)
    torch.save({"step": 7, "optimizer": {}, "extra": _Anything()}, latest / STATE_FILE)
    with pytest.raises(pickle.UnpicklingError):
        load_trainer_state(latest)
