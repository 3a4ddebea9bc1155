import subprocess
import sys
from pathlib import Path

import pytest

from cot_ray.config import ConfigError, load_config


def test_shipped_configs_load():
    paths = sorted(Path("configs").glob("*.yaml"))
    assert len(paths) >= 10
    for path in paths:
        cfg = load_config(path)
        assert cfg.name == path.stem and cfg.corpus.n > 0


def test_evaluation_uses_the_papers_planning_temperature_per_task():
    e = load_config("configs/smoke.yaml").eval
    assert e.execution("rmtp", "mult").plan_temperature == 0.0  # Mult: greedy first attempt
    assert e.execution("rtbs", "sudoku").plan_temperature == 1.0  # Sudoku: temperature 1
    assert e.execution("mtp", "sudoku-slots").plan_temperature == 1.0  # by family
    assert e.execution("mtp", "mult-msd").plan_temperature == 0.0
    assert (e.execution("rtbs", "sudoku").width, e.execution("mtp", "sudoku").step_budget) == (4, 32)


def test_a_config_extends_another_and_overrides_single_fields(tmp_path):
    (tmp_path / "base.yaml").write_text("name: base\nsft: {steps: 10, lr: 0.001}\ncorpus: {n: 50}\n")
    (tmp_path / "variant.yaml").write_text("extends: base.yaml\nname: variant\nsft: {lr: 0.002}\n")
    cfg = load_config(tmp_path / "variant.yaml")
    assert (cfg.name, cfg.sft.steps, cfg.sft.lr, cfg.corpus.n) == ("variant", 10, 0.002, 50)
    detailed, binary = load_config("configs/cpu-small-detailed.yaml"), load_config("configs/cpu-small.yaml")
    assert detailed.reflective_sft.verification == "detailed" and binary.reflective_sft.verification == "binary"
    assert detailed.sft == binary.sft and detailed.rl == binary.rl
    detailed, binary = load_config("configs/cpu-sudoku.yaml"), load_config("configs/cpu-sudoku-binary.yaml")
    assert (detailed.reflective_sft.verification, binary.reflective_sft.verification) == ("detailed", "binary")
    assert detailed.sft == binary.sft and detailed.corpus == binary.corpus and detailed.rl == binary.rl


@pytest.mark.parametrize("text,message", [
    ("extends: missing.yaml", "no such config file"),
    ("extends: bad.yaml", "cycle"),
    ("extends: [1]", "extends: must be"),
])
def test_bad_extends_is_named(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


@pytest.mark.parametrize("text,field", [
    ("corpus: {n: 0}", "corpus.n"),
    ("corpus: {tasks: [chess]}", "corpus.tasks"),
    ("eval: {modes: [mtp, beam]}", "eval.modes.1"),
    ("eval: {nn: 3}", "eval.nn"),
    ("eval: {noise: [{false_positive: 2}]}", "eval.noise.0.false_positive"),
])
def test_bad_config_names_the_field(tmp_path, text, field):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(path)


def test_core_imports_no_ray_torch_or_vllm():
    code = ("import sys, cot_ray.tasks, cot_ray.mtp.execute, cot_ray.mtp.expert, cot_ray.mtp.theory, "
            "cot_ray.tokenizer; heavy = {'ray', 'torch', 'vllm'} & set(sys.modules); assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_model_folders_are_made_absolute_and_a_missing_one_is_named(tmp_path, monkeypatch):
    import numpy as np
    from safetensors.numpy import save_file

    from cot_ray.train.checkpoints import model_folder

    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text("{}")
    save_file({"w": np.zeros(2, np.float32)}, str(tmp_path / "ckpt" / "model.safetensors"))
    monkeypatch.chdir(tmp_path)
    assert model_folder("ckpt") == str(tmp_path / "ckpt")  # Ray Train workers run elsewhere
    with pytest.raises(ValueError, match="--init: 'runs/x' is not a model folder"):
        model_folder("runs/x")


def test_rl_with_a_missing_init_exits_with_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "cot_ray.cli", "rl", "--config", "configs/smoke.yaml",
                             "--init", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "is not a model folder" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["cpu-small", "cpu-sudoku", "cpu-sudoku-binary", "smoke"])
def test_stage_four_of_a_two_core_config_fits_two_cpus(name):
    """The rollout pool and the learner are up together in stage IV; on 2 CPUs they must fit, or
    Ray waits forever for a CPU."""
    c = load_config(f"configs/{name}.yaml")
    pool = c.rollout.sized(c.rl.rollout)
    assert pool.workers * pool.cpus_per_worker + c.rl.workers * c.rl.cpus_per_worker <= 2
