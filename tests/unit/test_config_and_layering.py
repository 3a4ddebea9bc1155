import subprocess
import sys

import pytest

from cot_ray.config import ConfigError, load_config


def test_shipped_configs_load():
    for name in ("smoke", "cpu-small"):
        cfg = load_config(f"configs/{name}.yaml")
        assert cfg.name == name and cfg.corpus.n > 0


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
