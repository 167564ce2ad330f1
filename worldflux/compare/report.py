"""The comparison's output: one Markdown table set, one CSV, TensorBoard scalars, PNG plots.

Every section (one environment or dataset, its models) writes three tables (open loop, closed
loop, cost) under a header that holds what reproduces them: the seed, the data source, its
:func:`~worldflux.compare.data.dataset_hash`, the spaces, the budgets and the command.

The CSV is long-format (``section, table, model, kind, metric, step, value``; ``step`` is the
horizon for the open loop and the planning budget for the closed loop). TensorBoard gets the same
numbers as scalars (``open_loop/<metric>/<model>`` over the horizon, ``closed_loop/return/<model>``
over the planning budget) and the plots as images. The plots (fidelity vs horizon, return vs
planning budget) are drawn with Pillow (:mod:`worldflux.compare.plots`; matplotlib is not a
worldflux dependency) and also written as PNG files.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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


def markdown(sections: Sequence[Section], title: str, plots: list[str]) -> str:
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
        out += ["Plots (also TensorBoard images): " + ", ".join(f"`{p}`" for p in plots), ""]
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
            success = e.success_ci()
            if success is not None:
                rows.append([s.name, "closed_loop", e.name, e.agent, "success", step, success[0]])
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


def write_tensorboard(
    sections: Sequence[Section], folder: Path, images: dict[str, np.ndarray]
) -> None:
    """The tables as TensorBoard scalars (curves over horizon and budget) and the charts as
    images."""
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
        for name, image in images.items():
            writer.add_image(f"plots/{name}", image, 0, dataformats="HWC")
    finally:
        writer.close()


def charts(sections: Sequence[Section]) -> dict[str, np.ndarray]:
    """Fidelity vs horizon (one chart per section and metric) and return vs planning budget."""
    from worldflux.compare.plots import Series, line_chart

    out: dict[str, np.ndarray] = {}
    for s in sections:
        for metric in sorted({m for f in s.fidelity for m in f.metrics}):
            curves = [
                Series(f.name, range(1, len(f.metrics[metric]) + 1), f.metrics[metric], f.baseline)
                for f in s.fidelity
                if metric in f.metrics
            ]
            out[f"{s.name}-open_loop-{metric}"] = line_chart(
                curves, f"{s.name}: {metric} (open loop)", "horizon", metric
            )
        planned = [e for e in s.episodes if e.budget is not None]
        if planned:
            curves = []
            for model in dict.fromkeys(e.name for e in planned):
                pts = sorted(
                    (float(e.budget or 0), e.mean_ci()[0]) for e in planned if e.name == model
                )
                curves.append(Series(model, [p[0] for p in pts], [p[1] for p in pts]))
            for e in s.episodes:  # agents without a budget as flat reference lines
                if e.budget is None:
                    budgets = sorted({p.budget for p in planned if p.budget is not None})
                    label = e.name if e.agent == "random" else f"{e.name} own agent"
                    curves.append(Series(label, budgets, [e.mean_ci()[0]] * len(budgets), True))
            out[f"{s.name}-closed_loop-return"] = line_chart(
                curves,
                f"{s.name}: return vs planning budget",
                "samples per iteration",
                "return",
                log_x=True,
            )
    return out


def write(sections: Sequence[Section], folder: Path, title: str) -> dict[str, Path]:
    """Write ``compare.md``, ``compare.csv``, ``tensorboard/`` and the PNG plots into ``folder``."""
    from worldflux.compare.plots import write_png

    folder.mkdir(parents=True, exist_ok=True)
    images = charts(sections)
    for name, image in images.items():
        write_png(image, str(folder / f"{name}.png"))
    write_tensorboard(sections, folder / "tensorboard", images)
    md = folder / "compare.md"
    md.write_text(markdown(sections, title, [f"{n}.png" for n in images]))
    table = folder / "compare.csv"
    with table.open("w", newline="") as fh:
        csv.writer(fh).writerows(csv_rows(sections))
    return {"markdown": md, "csv": table, "tensorboard": folder / "tensorboard"}
