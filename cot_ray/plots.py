"""The report's figures (matplotlib, written to files): accuracy bars, RL curves, digit heat map."""

from __future__ import annotations

from pathlib import Path

from cot_ray.stats import counts, wilson


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display on a training machine)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path, dpi: int = 120) -> None:
    """Lay out, write and close a figure (closing frees it: a run draws several)."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)


def plot_accuracy(rows: list[dict], modes: list[str], path: Path) -> None:
    """Bars of accuracy per (policy, task, split), one per mode, with 95% Wilson intervals."""
    plt = pyplot()
    groups = list(dict.fromkeys((r["policy"], r["task"], r["difficulty"]) for r in rows))
    index = {(r["policy"], r["task"], r["difficulty"], r["mode"]): r for r in rows}
    fig, ax = plt.subplots(figsize=(max(6, len(groups) * 0.8), 5))
    width = 0.8 / max(len(modes), 1)
    for j, mode in enumerate(modes):
        acc, below, above = [], [], []
        for g in groups:  # a run that does not exist is NaN: no bar, no error bar
            k, n = counts(index[(*g, mode)]) if (*g, mode) in index else (0, 0)
            low, high = wilson(k, n)
            p = k / n if n else float("nan")
            acc.append(100 * p)
            below.append(100 * (p - low))
            above.append(100 * (high - p))
        ax.bar([i + j * width for i in range(len(groups))], acc, width, yerr=[below, above], capsize=2,
               label=mode.upper())
    ax.set_xticks([i + width * (len(modes) - 1) / 2 for i in range(len(groups))])
    ax.set_xticklabels([f"{p.replace('(', chr(10) + '(')}\n{t} {d}" for p, t, d in groups], fontsize=6,
                       rotation=60, ha="right")
    ax.set_ylabel("accuracy (%), 95% interval")
    ax.set_ylim(0, 105)
    ax.legend()
    save(fig, path)


def plot_rl(curves: dict[str, dict[str, list[float]]], columns: tuple[str, ...], path: Path) -> None:
    """One panel per metric column, one line per RL run, against the update number."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(columns), figsize=(3 * len(columns), 3))
    for ax, column in zip(axes, columns):
        for run, c in curves.items():
            if column in c:
                ax.plot(range(1, len(c[column]) + 1), c[column], marker=".", label=run.removeprefix("stage4-"))
        ax.set_title(column, fontsize=9)
        ax.set_xlabel("update", fontsize=8)
    axes[0].legend(fontsize=7)
    save(fig, path, dpi=110)


def plot_heatmap(grid: dict[tuple[int, int], tuple[int, int]], title: str, path: Path) -> None:
    """Accuracy over (digits of x, digits of y); ``grid`` maps each cell to (correct, n)."""
    plt = pyplot()
    xs = list(range(min(x for x, _ in grid), max(x for x, _ in grid) + 1))
    ys = list(range(min(y for _, y in grid), max(y for _, y in grid) + 1))
    acc = [[100 * grid[x, y][0] / grid[x, y][1] if (x, y) in grid else float("nan") for y in ys] for x in xs]
    fig, ax = plt.subplots(figsize=(1 + 0.8 * len(ys), 1 + 0.7 * len(xs)))
    image = ax.imshow(acc, origin="lower", cmap="viridis", vmin=0, vmax=100, aspect="auto")
    for i, x in enumerate(xs):
        for j, y in enumerate(ys):
            if (x, y) in grid:
                ax.text(j, i, f"{acc[i][j]:.0f}\nn={grid[x, y][1]}", ha="center", va="center", fontsize=6,
                        color="white" if acc[i][j] < 50 else "black")
    ax.set_xticks(range(len(ys)), [str(y) for y in ys])
    ax.set_yticks(range(len(xs)), [str(x) for x in xs])
    ax.set_xlabel("digits of y")
    ax.set_ylabel("digits of x")
    ax.set_title(title, fontsize=8)
    fig.colorbar(image, ax=ax, label="accuracy (%)")
    save(fig, path)
