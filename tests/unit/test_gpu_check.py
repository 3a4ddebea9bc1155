"""The GPU check stays runnable where only torch and transformers are (no Ray, vLLM or Arrow)."""

import subprocess
import sys


def test_the_step_functions_import_without_ray_vllm_or_arrow():
    code = ("import sys, cot_ray.rl.learner, cot_ray.train.loop, cot_ray.model.tiny; "
            "heavy = {'ray', 'vllm', 'pyarrow'} & set(sys.modules); assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_a_gpu_it_says_so_in_one_line_and_exits_0():
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: run bench/gpu_check.py itself")
    run = subprocess.run([sys.executable, "bench/gpu_check.py"], capture_output=True, text=True, check=True)
    assert run.stdout.strip().count("\n") == 0 and "no CUDA device" in run.stdout
