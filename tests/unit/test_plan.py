"""The pipeline's plan: every stage reads only what an earlier stage writes."""

from pathlib import Path

from cot_ray.config import load_config
from cot_ray.layout import EVALS, RL_RUNS, RunLayout
from cot_ray.pipeline import plan


def test_every_input_is_an_earlier_output_and_every_output_is_written_once(tmp_path):
    for name in ("smoke", "cpu-small"):
        config = load_config(f"configs/{name}.yaml")
        stages = plan(config, tmp_path, progress=False)
        written: set[Path] = set()
        for stage in stages:
            assert set(stage.inputs) <= written, (stage.name, set(stage.inputs) - written)
            assert not set(stage.outputs) & written, stage.name
            written |= set(stage.outputs)
        # every evaluation the report reads is made (stage IV: the RL runs the config asks for)
        run = RunLayout(tmp_path)
        skipped = {run.eval_summary(r.name) for r in RL_RUNS if r.mode not in config.rl.runs}
        assert {run.eval_summary(e) for e in EVALS} - skipped <= written


def test_rl_runs_are_chosen_by_the_config(tmp_path):
    config = load_config("configs/smoke.yaml")
    names = [s.name for s in plan(config, tmp_path)]
    assert sum("stage IV" in n for n in names) == 2
    only = config.model_copy(update={"rl": config.rl.model_copy(update={"runs": ["rmtp"]})})
    assert [n for n in (s.name for s in plan(only, tmp_path)) if "stage IV" in n] == ["stage IV: RL through the RMTP"]


def test_a_stage_is_done_only_when_its_model_weights_exist(tmp_path: Path):
    stage = next(s for s in plan(load_config("configs/smoke.yaml"), tmp_path) if s.name.startswith("stage I:"))
    final = stage.outputs[0]
    assert final == RunLayout(tmp_path).final("pretrain")
    final.mkdir(parents=True)
    assert not stage.done()  # an empty final/ (a run killed while saving) is not done
    header = b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}'
    (final / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + bytes(8))
    assert stage.done()


def test_reflective_modes_run_only_on_the_difficulties_the_config_names(tmp_path):
    """eval_checkpoint runs MTP on every difficulty, RMTP/RTBS only where reflective_difficulties says."""
    from cot_ray.evaluate import LocalPool
    from cot_ray.mtp import ExpertPolicy
    from cot_ray.run_eval import eval_checkpoint
    from cot_ray.tasks import get_task

    config = load_config("configs/smoke.yaml")
    config = config.model_copy(update={"corpus": config.corpus.model_copy(update={"tasks": ["mult"]}),
                                       "eval": config.eval.model_copy(update={
                                           "n": 3, "difficulties": ["id-easy", "id-hard"],
                                           "reflective_difficulties": ["id-easy"]})})
    rows = eval_checkpoint(config, LocalPool(ExpertPolicy(get_task("mult"))), "p", ["mtp", "rmtp", "rtbs"], tmp_path)
    assert [(r["difficulty"], r["mode"]) for r in rows] == [
        ("id-easy", "mtp"), ("id-easy", "rmtp"), ("id-easy", "rtbs"), ("id-hard", "mtp")]
