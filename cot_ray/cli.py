"""The ``cot-ray`` command.

    cot-ray data      generate a CoT corpus (expert traces) to Parquet, in parallel on Ray
    cot-ray eval      run a policy through MTP / RMTP / RTBS and score it
    cot-ray pipeline  run every stage of a config into a run folder (resumable)
    cot-ray serve     serve the verifier over HTTP (Ray Serve) until Ctrl-C

Each subcommand has its own ``--help``. Bad arguments exit with status 2 and one line saying
what is wrong.
"""

from __future__ import annotations

import argparse
import logging
import sys

from cot_ray.tasks import DIFFICULTIES, TASKS

EPILOG = """examples:
  cot-ray data --task mult --difficulty id-easy --n 10000 --seed 0 --out corpus/mult.parquet
  cot-ray eval --policy expert --task sudoku --mode rtbs --difficulty id-hard --n 100 --out r.jsonl
  cot-ray pipeline --config configs/cpu-small.yaml --out runs/cpu-small
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

    pl = sub.add_parser("pipeline", help="run every stage of a config (the main job)",
                        description="Run the stages of a YAML config into a run folder; finished "
                        "stages are skipped when re-run.")
    pl.add_argument("--config", required=True)
    pl.add_argument("--out", required=True, help="run folder")

    sv = sub.add_parser("serve", help="serve the verifier over HTTP (Ray Serve)",
                        description="Deploy the expert verifier and outcome reward as a Ray Serve app "
                        "(POST /v1/verify, POST /v1/reward, GET /healthz, /docs) and block until Ctrl-C.")
    sv.add_argument("what", choices=["verifier"])
    sv.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--replicas", type=int, default=1)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return {"data": _data, "eval": _eval, "pipeline": _pipeline, "serve": _serve}[args.command](args)
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
    from cot_ray.evaluate import Summary, evaluate, make_problems, record, write_jsonl
    from cot_ray.mtp import ExecutionConfig, ExpertPolicy
    from cot_ray.tasks import get_task

    if args.n <= 0:
        raise ValueError(f"--n must be positive, got {args.n}")
    task = get_task(args.task)
    noise = {}
    if args.policy == "noisy-expert":
        noise = {"step_error": args.step_error, "false_positive": args.false_positive,
                 "false_negative": args.false_negative}
    policy = ExpertPolicy(task, **noise)
    problems = make_problems(task, args.difficulty, args.n, args.seed)
    trajs = evaluate(task, policy, problems, ExecutionConfig(mode=args.mode, seed=args.seed), progress=True)
    if args.out:
        write_jsonl(args.out, (record(t) for t in trajs))
    print(f"{args.policy} {args.task} {args.difficulty} {args.mode}: {Summary.of(trajs).line()}")
    return 0


def _pipeline(args: argparse.Namespace) -> int:
    from cot_ray.config import load_config
    from cot_ray.pipeline import run_pipeline

    report = run_pipeline(load_config(args.config), args.out)
    print(f"report: {report}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from cot_ray.verify.serve import run_verifier

    run_verifier(args.host, args.port, args.replicas)
    return 0


if __name__ == "__main__":
    sys.exit(main())
