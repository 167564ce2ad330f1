"""``python -m worldflux.compare`` (also ``worldflux-compare``): world models side by side.

Examples::

    python -m worldflux.compare models=[dreamer:ci,ssm:ci] env=catch env.size=16
    python -m worldflux.compare models=[outputs/train/run-a,outputs/train/run-b] env=catch
    python -m worldflux.compare models=[jepa:ci] data.dataset=datasets/wall closed_loop.enabled=false
    python -m worldflux.compare +compare=ci          # every family's ci preset (docs/compare.md)

Models are preset ids or aliases (built for the data's spaces and trained ``train.updates``
updates on the same training episodes), ``save_pretrained`` directories, training run directories
or ``.ckpt`` files (used as they are). The data is one environment (``env=``; random-action
episodes from ``seed``) or one offline dataset (``data.dataset=``). ``sections`` (see
``conf/compare/ci.yaml``) runs several such comparisons into one report. The output directory
holds ``compare.md``, ``compare.csv``, ``tensorboard/`` and PNG plots.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from worldflux.catalog import conf_dir
from worldflux.cli import run_cli
from worldflux.errors import ConfigError


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def run_section(
    name: str,
    models: list[Any],
    env: Mapping[str, Any] | None,
    cfg: Mapping[str, Any],
) -> Any:
    """One comparison (one data source, its models) as a :class:`~worldflux.compare.report.Section`.

    Args:
        name: the section's title.
        models: preset ids, aliases, paths, or ``(name, WorldModel)`` pairs.
        env: the env config, or ``None`` with ``cfg["data"]["dataset"]``.
        cfg: the compare config (``data``, ``train``, ``open_loop``, ``closed_loop``, ``cost``,
            ``seed``, ``device``).
    """
    import torch

    from worldflux.compare import closed_loop, cost, open_loop
    from worldflux.compare.data import load_data
    from worldflux.compare.models import prepare
    from worldflux.compare.report import Section

    seed, device = int(cfg["seed"]), str(cfg["device"])
    d, ol, cl = cfg["data"], cfg["open_loop"], cfg["closed_loop"]
    torch.manual_seed(seed)
    data = load_data(env, d.get("dataset"), int(d["train_episodes"]), int(d["eval_episodes"]), seed)
    updates = int(cfg["train"]["updates"])
    entries = prepare(list(models), data, updates, seed, device)
    notes: list[str] = []
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        fidelity = open_loop.evaluate(
            entries, data, int(ol["context"]), int(ol["horizon"]), int(ol["windows"]), notes
        )
    episodes: list[Any] = []
    if cl.get("enabled", True):
        episodes, planner_notes = closed_loop.evaluate(
            entries,
            data,
            episodes=int(cl["episodes"]),
            seed=seed + 1,
            planner=str(cl["planner"]),
            planner_args=dict(cl.get("planner_args") or {}),
            budgets=[int(b) for b in cl["budgets"]],
            drive=str(cl.get("drive", "auto")),
            own_agent=bool(cl.get("own_agent", True)),
        )
        notes += planner_notes
    rates = {f.name: f.steps_per_second for f in fidelity if not f.baseline}
    costs = cost.measure_all(entries, data, int(cfg["cost"]["updates"]), seed, device, rates)
    lengths = [len(ep["reward"]) for ep in [*data.train, *data.held_out]]
    header = {
        "seed": seed,
        "data": data.source,
        "dataset hash": f"`{data.digest}`",
        "spaces": data.spec.describe(),
        "episodes": f"{len(data.train)} train, {len(data.held_out)} held out "
        f"({sum(lengths)} steps)",
        "training": f"{updates} updates per preset (loaded models as given)",
        "open loop": f"context {ol['context']}, horizon {ol['horizon']}, "
        f"up to {ol['windows']} windows",
        "device": f"{device}, torch {torch.__version__}",
    }
    if cl.get("enabled", True):
        header["closed loop"] = (
            f"{cl['episodes']} episodes per agent, planner {cl['planner']} "
            f"{dict(cl.get('planner_args') or {})}, budgets {list(cl['budgets'])}"
        )
    return Section(name, header, fidelity, episodes, costs, notes)


def compare(cfg: Mapping[str, Any], out_dir: Path, command: str | None = None) -> dict[str, Path]:
    """Run every section of ``cfg`` and write the report into ``out_dir``.

    Raises:
        ConfigError: no models or data, or a bad setting (naming it).
    """
    import torch

    from worldflux.compare.report import write

    cfg = _plain(cfg)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    sections_cfg = cfg.get("sections") or [
        {
            "name": cfg.get("name") or "comparison",
            "models": cfg.get("models"),
            "env": cfg.get("env"),
        }
    ]
    sections = []
    for sec in sections_cfg:
        if not isinstance(sec, Mapping) or not sec.get("models"):
            raise ConfigError(f"each section needs models=[...], got {sec!r}")
        merged = {**cfg, **{k: v for k, v in sec.items() if k not in ("models", "env", "name")}}
        for key in ("data", "train", "open_loop", "closed_loop", "cost"):
            merged[key] = {**cfg.get(key, {}), **(sec.get(key) or {})}
        section = run_section(
            str(sec.get("name", "comparison")), list(sec["models"]), sec.get("env"), merged
        )
        if command:
            section.header["command"] = f"`{command}`"
        sections.append(section)
        print(f"compared {len(sec['models'])} models on {section.header['data']}")
    paths = write(sections, out_dir, str(cfg.get("title") or "World-model comparison"))
    print(f"report: {paths['markdown']} (CSV {paths['csv']}, TensorBoard {paths['tensorboard']})")
    return paths


def _run(cfg: DictConfig, out_dir: Path) -> dict[str, Path]:
    command = "python -m worldflux.compare " + " ".join(sys.argv[1:])
    return compare(cfg, out_dir, command)


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="compare")
def _app(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    run_cli(_run, cfg, out_dir, run_dir=out_dir)


def main() -> None:
    """Console entry point (``worldflux-compare``)."""
    if {"--help", "-h"} & set(sys.argv[1:]):
        print(__doc__)
        return
    _app()
