"""Which elements of a step does a verifier check? Controlled probes at held-out states.

The within-state AUC of a stage-III verifier has stayed at 54-60 (docs/results-history.md): it
ranks right and wrong steps at one state barely better than a coin. This bench asks which kinds of
error it sees and which it does not, and what its scores depend on, without a rollout pool:

- at every state of the expert's path through held-out problems (the validation split by default;
  questions the run trained on are skipped), the expert's step and, for each corruption kind the
  step allows, that step with one element of that kind wrong (``cot_ray.verify.discrimination.
  expert_probes``): the same state, one element apart;
- each checkpoint's teacher-forced acceptance of every probe (``cot_ray.verify.scoring``);
- per kind: the within-state AUC of the right step against the corrupted one (0.5: blind to that
  kind; 1: it sees it) and the mean acceptance of the corrupted steps;
- the acceptance of the right step by its position on the path (step 1, 2, ...): a verifier that
  judges how hard a state looks accepts right steps less where the problem is still long.

    python bench/verifier_probe.py --run runs/cpu-small --config configs/cpu-small.yaml
    python bench/verifier_probe.py --run runs/cpu-small --config configs/cpu-small.yaml \\
        --checkpoints stage3-reflective-sft/final stage4-rl-rmtp/final --n id-hard=200
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import expert_probe, held_out_args, trained_on

from cot_ray.config import load_config
from cot_ray.data.splits import problems
from cot_ray.tasks import get_task


def path_positions(task, probs) -> dict[str, int]:
    """Each state's step number on its problem's expert path (1 = the problem's first state)."""
    out: dict[str, int] = {}
    for problem in probs:
        state, k = task.initial_state(problem), 1
        while state is not None:
            out.setdefault(state, k)
            state, k = task.transition(state, task.expert_step(state, problem)).next_state, k + 1
    return out


def measure(task_name: str, probs, checkpoint: Path, detailed: bool, seed: int) -> dict:
    """Probes at the problems' expert paths, scored by ``checkpoint``: the figures of the docstring."""
    scored, figures = expert_probe(str(checkpoint), task_name, probs, detailed, seed)
    position = path_positions(get_task(task_name), probs)
    right_by_position: dict[int, list[float]] = {}
    for p, a in scored:
        if p.correct:
            right_by_position.setdefault(min(position[p.state], 4), []).append(a)
    return figures | {"right_by_position": {k: sum(v) / len(v) for k, v in sorted(right_by_position.items())}}


def report(results: dict[str, dict[str, dict]], split: str) -> str:
    """Markdown tables: per checkpoint and difficulty, AUC by kind and right acceptance by position."""
    lines = [f"expert probes, {split} split: within-state AUC (%) of the expert's step against one element of "
             "each kind wrong, at the same state; acceptance (%) of the corrupted steps", ""]
    for name, by_difficulty in results.items():
        for d, r in by_difficulty.items():
            lines += [f"### {name}, {d}: {r['states']} states, {r['probes']} probes; within-state AUC "
                      f"{100 * r['within_state_auc']:.1f}, right steps accepted {100 * r['right_acceptance']:.1f}%",
                      "", "| wrong element | within-state AUC | pairs | acceptance of the wrong step |",
                      "|---|---|---|---|"]
            lines += [f"| {k['kind']} | {100 * k['within_state_auc']:.1f} | {k['pairs']} | "
                      f"{100 * k['wrong_acceptance']:.1f} |" for k in r["kinds"]]
            cells = ", ".join(f"step {'4+' if int(k) == 4 else k}: {100 * a:.1f}"
                              for k, a in r["right_by_position"].items())
            lines += ["", f"right steps accepted (%) by position on the path: {cells}", ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    held_out_args(p, "a trained stage III (or any verifier checkpoint)", "its task, its verification type")
    p.set_defaults(n=[("id-easy", 100), ("id-hard", 300)])
    p.add_argument("--checkpoints", nargs="+", default=["stage3-reflective-sft/final"],
                   help="verifier checkpoints, relative to --run (default: stage III's final)")
    p.add_argument("--seed", type=int, default=0, help="seeds the corruptions")
    args = p.parse_args()
    run, config = Path(args.run).resolve(), load_config(args.config)
    task_name = config.corpus.tasks[0]
    exclude = trained_on(config, run, task_name)
    detailed = config.reflective_sft.verification != "binary"
    t0 = time.time()
    results = {}
    for name in args.checkpoints:
        checkpoint = run / name
        if not checkpoint.exists():
            p.error(f"--checkpoints: {checkpoint} does not exist")
        results[name] = {d: measure(task_name, problems(get_task(task_name), d, n, config.eval.seed, args.split,
                                                        exclude), checkpoint, detailed, args.seed)
                         for d, n in args.n}
    out = run / f"bench-verifier-probe-{args.split}.json"
    out.write_text(json.dumps(results, indent=1))
    print(report(results, args.split))
    print(f"{time.time() - t0:.0f}s; figures in {out}")


if __name__ == "__main__":
    main()
