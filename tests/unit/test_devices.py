"""Every tensor a training step uses sits on the model's device.

On a CPU machine a tensor left behind on the CPU is invisible: everything is on the CPU. So the
models and batches go to PyTorch's ``meta`` device here, and a dispatch mode records the device
of every tensor each operation touches. A step that builds or keeps a tensor on the CPU (a
reference model never moved, a batch field forgotten, a ``torch.zeros`` without a device) shows
up as a CPU tensor in that record, and the test fails: on a GPU it would have crashed or copied.
"""

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from cot_ray.config import RLConfig
from cot_ray.model.tiny import build_model
from cot_ray.rl.experience import StepSequence
from cot_ray.rl.learner import ValueModel, pad, policy_losses
from cot_ray.train.loop import supervised_loss

META = torch.device("meta")
CFG = RLConfig(clip=0.1, kl_coef=0.1)


class DeviceRecord(TorchDispatchMode):
    """The devices of every non-scalar tensor passed to an operation inside the block."""

    def __init__(self) -> None:
        super().__init__()
        self.devices: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        for a in tree_flatten((args, kwargs or {}))[0]:
            if isinstance(a, torch.Tensor) and a.dim() > 0:
                self.devices.add(f"{a.device.type} ({func})" if a.device.type != "meta" else "meta")
        return func(*args, **(kwargs or {}))


def _sequences() -> list[StepSequence]:
    return [StepSequence(ids=[1, 5, 6, 7, 8], start=2, old_logp=[-1.0, -1.2, -0.5], adv_mask=[1.0, 1.0, 1.0],
                         train_mask=[1.0, 1.0, 1.0], advantage=0.5, trajectory=0, reward=1.0),
            StepSequence(ids=[1, 5, 9, 2], start=2, old_logp=[-0.3, -2.0], adv_mask=[1.0, 0.0],
                         train_mask=[1.0, 1.0], advantage=-0.5, trajectory=1, reward=0.0)]


def test_the_supervised_step_touches_only_the_models_device():
    model = build_model("tiny").to(META)
    x, y, mask = (t.to(META) for t in (torch.ones(2, 6, dtype=torch.long), torch.ones(2, 6, dtype=torch.long),
                                       torch.ones(2, 6)))
    with DeviceRecord() as record:
        loss = supervised_loss(model, x, y, mask)
        loss.backward()
    assert record.devices == {"meta"} and loss.device == META


def test_the_policy_step_touches_only_the_models_device_for_grpo_and_ppo():
    policy = build_model("tiny")
    value = ValueModel(policy).to(META)
    policy, ref = policy.to(META), build_model("tiny").to(META).requires_grad_(False)
    targets = [(torch.zeros(3), torch.ones(3)), (torch.zeros(2), torch.ones(2))]
    padded = pad(_sequences(), 0, targets)
    batch = {k: v.to(META) for k, v in padded.items()}
    for critic in (None, value):
        with DeviceRecord() as record:
            losses = policy_losses(policy, ref, critic, batch, CFG)
            (losses["policy"] + losses["value"]).backward()
        assert record.devices == {"meta"}, record.devices
        assert all(t.device == META for t in losses.values())


def test_the_record_sees_a_tensor_left_on_the_cpu():
    model = build_model("tiny").to(META)
    with DeviceRecord() as record:
        model(input_ids=torch.ones(1, 3, dtype=torch.long))  # the batch was not moved
    assert any(d.startswith("cpu") for d in record.devices)


class DtypeRecord(TorchDispatchMode):
    """The dtypes of the matrix products run inside the block."""

    def __init__(self) -> None:
        super().__init__()
        self.dtypes: set[torch.dtype] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in (torch.ops.aten.mm.default, torch.ops.aten.addmm.default, torch.ops.aten.bmm.default):
            self.dtypes.update(a.dtype for a in args if isinstance(a, torch.Tensor))
        return func(*args, **(kwargs or {}))


def test_precision_bf16_runs_the_step_in_bf16_on_a_cpu_and_auto_does_not():
    from cot_ray.train.harness import Harness, uses_bf16

    assert (uses_bf16("bf16", "cpu", False), uses_bf16("auto", "cpu", False), uses_bf16("auto", "cuda", True),
            uses_bf16("auto", "cuda", False), uses_bf16("fp32", "cuda", True)) == (True, False, True, False, False)
    h = Harness.__new__(Harness)  # only the precision decision, no Ray Train context
    h.use_bf16, h.device = True, torch.device("cpu")
    model = build_model("tiny")
    with DtypeRecord() as record, h.autocast():
        model(torch.ones(1, 4, dtype=torch.long))
    assert torch.bfloat16 in record.dtypes

