"""The comparison's output: one Markdown table set, one CSV, TensorBoard scalars, PNG plots.

Every section (one environment or dataset, its models) writes three tables (open loop, closed
loop, cost) under a header that holds what reproduces them: the seed, the data source, its
:func:`~worldflux.compare.data.dataset_hash`, the spaces, the budgets and the command.

The CSV is long-format (``section, table, model, kind, metric, step, value``; ``step`` is the
horizon for the open loop and the planning budget for the closed loop). TensorBoard gets the same
numbers as scalars, so its charts are the plots (``open_loop/<metric>/<model>`` over the horizon,
``closed_loop/return/<model>`` over the planning budget). PNG plots of the same curves are written
when matplotlib is installed (it is not a worldflux dependency); the report says when they are not.
"""

from __future__ import annotations

import csv
import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worldflux.compare.closed_loop import Episodes
from worldflux.compare.cost import Cost
from worldflux.compare.open_loop import Fidelity


@dataclass
class Section:
    """Everything one section of the report shows."""

    name: str
    header: dict[str, Any]
    fidelity: list[Fidelity]
    episodes: list[Episodes]
    costs: list[Cost]
    notes: list[str] = field(default_factory=list)


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if abs(x) >= 1000 or (x != 0 and abs(x) < 10 ** -(digits - 1)):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"


def open_loop_md(rows: Sequence[Fidelity]) -> list[str]:
    """Markdown lines of the open-loop table (baselines in italics)."""
    horizon = max((len(v) for r in rows for v in r.metrics.values()), default=0)
    lines = [
        "| model | space | metric | " + " | ".join(f"h={h + 1}" for h in range(horizon)) + " |",
        "|---|---|---|" + "---:|" * horizon,
    ]
    for row in rows:
        name = f"*{row.name}*" if row.baseline else f"**{row.name}**"
        for metric, values in row.metrics.items():
            cells = " | ".join(_fmt(v) for v in values)
            lines.append(f"| {name} | {row.space} | {metric} | {cells} |")
    return lines


def closed_loop_md(rows: Sequence[Episodes]) -> list[str]:
    """Markdown lines of the closed-loop table."""
    goal = any(r.successes is not None for r in rows)
    head = "| model | agent | budget | episodes | return (95% CI) |" + (
        " success (95% CI) |" if goal else ""
    )
    lines = [head, "|---|---|---:|---:|---:|" + ("---:|" if goal else "")]
    for r in rows:
        mean, half = r.mean_ci()
        cell = f"{_fmt(mean)} ± {_fmt(half, 3)}"
        budget = "-" if r.budget is None else str(r.budget)
        line = f"| {r.name} | {r.agent} | {budget} | {len(r.returns)} | {cell} |"
        s = r.success_ci()
        if goal:
            line += f" {s[0]:.2f} [{s[1]:.2f}, {s[2]:.2f}] |" if s else " - |"
        lines.append(line)
    return lines


def cost_md(rows: Sequence[Cost]) -> list[str]:
    """Markdown lines of the cost table."""
    lines = [
        "| model | parameters | updates | updates/s | imagined steps/s | peak memory (MiB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for c in rows:
        lines.append(
            f"| {c.name} | {c.parameters:,} | {c.updates} | {_fmt(c.updates_per_second, 3)} | "
            f"{_fmt(c.imagined_per_second, 3)} | {_fmt(c.peak_mib, 3)} |"
        )
    return lines


def markdown(sections: Sequence[Section], title: str, plots: list[str], note: str) -> str:
    """The whole report as Markdown."""
    out = [f"# {title}", ""]
    for s in sections:
        out += [f"## {s.name}", ""]
        out += [f"- {k}: {v}" for k, v in s.header.items()]
        out += ["", "### Open loop (held-out episodes)", "", *open_loop_md(s.fidelity), ""]
        if s.episodes:
            out += ["### Closed loop", "", *closed_loop_md(s.episodes), ""]
        out += ["### Cost", "", *cost_md(s.costs), ""]
        if s.notes:
            out += ["Notes:", "", *[f"- {n}" for n in s.notes], ""]
    if plots:
        out += ["Plots: " + ", ".join(f"`{p}`" for p in plots), ""]
    if note:
        out += [note, ""]
    return "\n".join(out)


def csv_rows(sections: Sequence[Section]) -> list[list[Any]]:
    """Long-format rows: section, table, model, kind, metric, step, value."""
    rows: list[list[Any]] = [["section", "table", "model", "kind", "metric", "step", "value"]]
    for s in sections:
        for f in s.fidelity:
            kind = "baseline" if f.baseline else f.space
            for metric, values in f.metrics.items():
                rows += [
                    [s.name, "open_loop", f.name, kind, metric, h + 1, v]
                    for h, v in enumerate(values)
                ]
        for e in s.episodes:
            mean, half = e.mean_ci()
            step = "" if e.budget is None else e.budget
            rows.append([s.name, "closed_loop", e.name, e.agent, "return_mean", step, mean])
            rows.append([s.name, "closed_loop", e.name, e.agent, "return_ci95", step, half])
            if e.successes is not None:
                rows.append(
                    [s.name, "closed_loop", e.name, e.agent, "success", step, e.success_ci()[0]]
                )  # type: ignore[index]
        for c in s.costs:
            for metric in (
                "parameters",
                "updates",
                "updates_per_second",
                "imagined_per_second",
                "peak_mib",
            ):
                rows.append([s.name, "cost", c.name, "", metric, "", getattr(c, metric)])
    return rows


def write_tensorboard(sections: Sequence[Section], folder: Path) -> None:
    """The tables as TensorBoard scalars (curves over horizon and budget)."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(folder))
    try:
        for s in sections:
            for f in s.fidelity:
                for metric, values in f.metrics.items():
                    for h, v in enumerate(values):
                        writer.add_scalar(f"{s.name}/open_loop/{metric}/{f.name}", v, h + 1)
            for e in s.episodes:
                if e.budget is not None:
                    writer.add_scalar(
                        f"{s.name}/closed_loop/return/{e.name}", e.mean_ci()[0], e.budget
                    )
            for c in s.costs:
                for metric in ("updates_per_second", "imagined_per_second", "peak_mib"):
                    value = getattr(c, metric)
                    if value is not None:
                        writer.add_scalar(f"{s.name}/cost/{metric}/{c.name}", value, 0)
    finally:
        writer.close()


def write_png(sections: Sequence[Section], folder: Path) -> list[str]:
    """Fidelity vs horizon and return vs budget plots; ``[]`` without matplotlib."""
    if importlib.util.find_spec("matplotlib") is None:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for s in sections:
        metrics = sorted({m for f in s.fidelity for m in f.metrics})
        for metric in metrics:
            fig, ax = plt.subplots(figsize=(5, 3.5))
            for f in s.fidelity:
                if metric in f.metrics:
                    values = f.metrics[metric]
                    ax.plot(
                        range(1, len(values) + 1), values, "--" if f.baseline else "-", label=f.name
                    )
            ax.set(xlabel="horizon", ylabel=metric, title=f"{s.name}: {metric}")
            ax.legend(fontsize=6)
            name = folder / f"{s.name}-open_loop-{metric}.png"
            fig.savefig(name, dpi=100, bbox_inches="tight")
            plt.close(fig)
            written.append(name.name)
        planned = [e for e in s.episodes if e.budget is not None]
        if planned:
            fig, ax = plt.subplots(figsize=(5, 3.5))
            for model in sorted({e.name for e in planned}):
                pts = sorted((e.budget, e.mean_ci()[0]) for e in planned if e.name == model)
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=model)
            ax.set(xlabel="planning budget (samples)", ylabel="return", xscale="log", title=s.name)
            ax.legend(fontsize=6)
            name = folder / f"{s.name}-closed_loop-return.png"
            fig.savefig(name, dpi=100, bbox_inches="tight")
            plt.close(fig)
            written.append(name.name)
    return written


def write(sections: Sequence[Section], folder: Path, title: str) -> dict[str, Path]:
    """Write ``compare.md``, ``compare.csv``, ``tensorboard/`` and PNG plots into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    write_tensorboard(sections, folder / "tensorboard")
    plots = write_png(sections, folder)
    note = (
        ""
        if plots
        else "PNG plots were not written: matplotlib is not installed (the same curves are in "
        "TensorBoard: `tensorboard --logdir " + str(folder / "tensorboard") + "`)."
    )
    md = folder / "compare.md"
    md.write_text(markdown(sections, title, plots, note))
    table = folder / "compare.csv"
    with table.open("w", newline="") as fh:
        csv.writer(fh).writerows(csv_rows(sections))
    return {"markdown": md, "csv": table, "tensorboard": folder / "tensorboard"}
