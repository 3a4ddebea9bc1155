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
from pathlib import Path

from cot_ray.checks import writable
from cot_ray.cli_args import parser

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
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
    if args.out:
        _file_out(args.out)
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


def _file_out(out: str) -> None:
    """Before any work: ``out`` can be written, and its folder exists when the work is done."""
    writable(out)
    Path(out).absolute().parent.mkdir(parents=True, exist_ok=True)


def _open_pool(args: argparse.Namespace):
    """A rollout pool over ``args.checkpoint`` (a context manager: shut down on exit)."""
    _check_checkpoint(args.checkpoint)
    if args.workers < 1 or (args.unit_size is not None and args.unit_size < 1):
        raise ValueError("--workers and --unit-size must be >= 1")
    from cot_ray.rollout.pool import RolloutPool

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
    if args.temperature < 0:
        raise ValueError(f"--temperature must be >= 0 (0 = greedy), got {args.temperature}")
    _file_out(args.out)
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
    from cot_ray.solve import parse_question, render, solve, to_json
    from cot_ray.tasks import get_task

    problem = parse_question(args.task, args.question)  # before the engine starts: bad input fails fast
    if args.temperature < 0:
        raise ValueError(f"--temperature must be >= 0, got {args.temperature}")
    _check_checkpoint(args.checkpoint)
    from cot_ray.rollout.engines import make_engine

    task = get_task(args.task)
    trajectory = solve(task, make_engine(args.engine, args.checkpoint, seed=args.seed), problem, args.mode,
                       args.temperature, args.seed)
    print(to_json(task, trajectory) if args.json else render(task, trajectory))
    return 0


def _stage(args: argparse.Namespace) -> int:
    from cot_ray.pipeline import corpus_stage, train_stage

    config, out = _run_folder(args)
    final = train_stage(args.command, config, out, corpus_stage(config, out, progress=True))
    print(f"{args.command}: {final}")
    return 0


def _pipeline(args: argparse.Namespace) -> int:
    from cot_ray.pipeline import run_pipeline

    if args.dry_run:
        from cot_ray.dryrun import describe

        print("\n".join(describe(_config(args), Path(args.out).resolve())))
        return 0
    config, out = _run_folder(args)
    log_file = _log_to_run_folder(out)
    report = run_pipeline(config, out, allow_config_change=args.allow_config_change)
    print(f"report: {report} (log: {log_file})")
    return 0


def _config(args: argparse.Namespace):
    """The config of ``--config`` with the ``--set`` overrides, validated."""
    from cot_ray.config import load_config
    from cot_ray.overrides import parse_sets

    return load_config(args.config, parse_sets(args.sets))


def _run_folder(args: argparse.Namespace):
    """(config, run folder) of a pipeline or stage command, after checking, before any work, that the
    folder can be written and that every file of it a stage would trust and skip its work for is usable."""
    from cot_ray.checks import run_folder
    from cot_ray.pipeline import plan

    config = _config(args)
    writable(args.out, folder=True)
    out = Path(args.out).resolve()
    run_folder(dict.fromkeys(p for stage in plan(config, out, progress=False) for p in (*stage.inputs, *stage.outputs)))
    return config, out


def _log_to_run_folder(out: str):
    """Everything this process logs also goes to ``<out>/pipeline.log``; the terminal keeps
    cot_ray's own lines (a summary per stage and evaluation) and framework errors only."""
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
    from cot_ray.train.checkpoints import model_folder

    config = _config(args)
    model_folder(args.init)
    writable(args.out, folder=True)
    from cot_ray.rl.driver import run_rl

    final = run_rl(config, args.init, args.mode, args.out)
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
