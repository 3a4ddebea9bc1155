"""The GPU check: the paper's model sizes through the training step functions on one GPU, in bf16.

    python bench/gpu_check.py                 # part 1, about 2 minutes on an H200
    python bench/gpu_check.py --pipeline      # part 2 as well, where ray and vllm import

Part 1 needs only torch (with CUDA), transformers and numpy: no Ray, no vLLM. For each size
(1M, 4M, 16M) it times the two step functions the worker harness runs, under the harness's bf16
autocast:

- ``supervised_step`` (stages I-III) on a batch of 64 windows of 512 tokens;
- ``policy_step`` (the RL learner, GRPO with the KL to a frozen reference) on 256 sequences.

It prints tokens/s and the achieved TFLOP/s (model FLOPs: 6N + 12 L d T per trained token for a
training step, plus 2N + 4 L d T for the reference forward of the policy step), and checks that
each step's loss is finite and falls over a few repeats of one batch.

Part 2 runs the smoke pipeline end to end with its trainers and rollout workers on the GPU,
where ``ray`` and ``vllm`` import (a GPU cluster image). Without a GPU the script says so in one
line and exits 0. Never part of CI; docs/benchmarks.md records what it printed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = ("1M", "4M", "16M")


def _timed(step, seconds: float) -> tuple[int, float, list[float]]:
    """Run ``step`` (returns its loss) for about ``seconds`` after 3 warm-up calls."""
    import torch

    losses = [step() for _ in range(3)]
    torch.cuda.synchronize()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        losses.append(step())
        n += 1
    torch.cuda.synchronize()
    return n, time.perf_counter() - t0, losses


def check_size(size: str, seconds: float) -> list[str]:
    import torch

    from cot_ray.config import RLConfig
    from cot_ray.model.tiny import build_model, count_parameters, training_flops_per_token
    from cot_ray.rl.learner import policy_step
    from cot_ray.train.loop import make_optimizer, supervised_step

    dev = torch.device("cuda")

    def autocast():
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)

    lines = []
    torch.manual_seed(0)
    model = build_model(size, max_positions=1024).to(dev)
    n_params = count_parameters(model)

    def flops_per_token(seq: int, reference: bool) -> float:
        return training_flops_per_token(size, n_params, seq, reference)
    opt = make_optimizer(model, 1e-3, 0.1)
    b, seq = 64, 512
    x = torch.randint(0, 30, (b, seq), device=dev)
    y, mask = torch.roll(x, -1, 1), torch.ones(b, seq, device=dev)
    n, dt, losses = _timed(lambda: supervised_step(model, opt, x, y, mask, 1.0, autocast), seconds)
    tps = n * b * seq / dt
    lines.append(f"{size:>4} supervised_step  {tps:>12,.0f} tokens/s  {tps * flops_per_token(seq, False) / 1e12:6.2f}"
                 f" TFLOP/s  loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    assert all(map(lambda v: v == v and abs(v) < 1e4, losses)) and losses[-1] < losses[0], f"{size}: {losses[:3]}"

    ref = build_model(size, max_positions=1024).to(dev).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, betas=(0.9, 0.95), weight_decay=0.0)
    m, seq = 256, 256
    batch = {"x": torch.randint(0, 30, (m, seq), device=dev)}
    batch["y"] = torch.roll(batch["x"], -1, 1)
    batch["old_logp"] = torch.full((m, seq), -3.0, device=dev)
    batch["train_mask"] = batch["adv_mask"] = torch.ones(m, seq, device=dev)
    batch["advantage"] = torch.randn(m, 1, device=dev).expand(m, seq).contiguous()
    cfg = RLConfig(clip=0.1, kl_coef=0.1, value_coef=0.5, grad_clip=1.0)

    def rl_step() -> float:
        return policy_step(model, ref, None, opt, batch, cfg, False, autocast)["loss"]

    n, dt, losses = _timed(rl_step, seconds)
    tps = n * m * seq / dt
    lines.append(f"{size:>4} policy_step      {tps:>12,.0f} tokens/s  {tps * flops_per_token(seq, True) / 1e12:6.2f}"
                 f" TFLOP/s  loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    assert all(v == v for v in losses), f"{size}: policy loss is NaN"
    return lines


def pipeline_on_gpu() -> str:
    """The smoke pipeline with trainers and rollout workers on the GPU; returns a one-line verdict."""
    missing = [m for m in ("ray", "vllm") if importlib.util.find_spec(m) is None]
    if missing:
        return f"part 2 skipped: {', '.join(missing)} not installed (it needs a GPU cluster image)"
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "gpu-smoke.yaml"
        config.write_text(f"extends: {ROOT / 'configs' / 'smoke.yaml'}\nname: gpu-smoke\n"
                          "pretrain: {use_gpu: true}\nsft: {use_gpu: true}\nreflective_sft: {use_gpu: true}\n"
                          "rl: {use_gpu: true}\nrollout: {gpus_per_worker: 0.2, gpu_memory_utilization: 0.1}\n")
        t0 = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "cot_ray.cli", "pipeline", "--config", str(config),
                              "--out", str(Path(tmp) / "run")], capture_output=True, text=True)
        took = time.perf_counter() - t0
    if run.returncode != 0:
        return f"part 2 FAILED after {took:.0f}s:\n{run.stderr[-3000:]}"
    return f"part 2: the smoke pipeline ran end to end on the GPU in {took:.0f}s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per step function and size")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=SIZES)
    parser.add_argument("--pipeline", action="store_true", help="part 2: the smoke pipeline on the GPU")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print(f"gpu_check: no CUDA device (torch {torch.__version__}); nothing to check")
        return 0
    print(f"gpu_check: {torch.cuda.get_device_name()} torch {torch.__version__} "
          f"bf16={torch.cuda.is_bf16_supported()}", flush=True)
    with contextlib.suppress(AttributeError):
        torch.backends.cuda.matmul.allow_tf32 = True
    for size in args.sizes:
        for line in check_size(size, args.seconds):
            print(line, flush=True)
        torch.cuda.empty_cache()
    if args.pipeline:
        print(pipeline_on_gpu(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
