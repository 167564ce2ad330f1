"""Fixtures of the training tests: a composed train config, and a tiny test double of a family.

The double (never a preset) is used only by the loop tests.

It regresses the reward from the observation and acts by always choosing action 0, which is
enough to exercise collection, train-ratio scheduling, logging, checkpoints and NaN detection
without the cost of a real family.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from worldflux.core.config import WorldModelConfig
from worldflux.core.model import LossOutput, WorldModel


@dataclass
class RewardRegressorConfig(WorldModelConfig):
    """Config of :class:`RewardRegressor`."""

    _target_: str = "worldflux.tests.RewardRegressor"  # never resolved: built directly
    family: str = "test_double"
    lr: float = 1e-2
    nan_after: int = -1
    batch_size: int = 4
    batch_length: int = 5
    train_ratio: float = 10.0


class RewardRegressor(WorldModel):
    """Predicts ``reward[t]`` from ``obs[t]`` with one linear layer."""

    config_class = RewardRegressorConfig
    capabilities = frozenset({"loss", "act"})

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        size = 1
        for s in self.config.obs_shape:
            size *= int(s)
        self.head = nn.Linear(size, 1)
        self.acted = 0

    def loss(self, batch: Any) -> LossOutput:
        obs = batch["obs"].float().flatten(2)
        if obs.max() > 1.5:
            obs = obs / 255.0
        err = self.head(obs).squeeze(-1) - batch["reward"].float()
        mse = err.pow(2).mean()
        return LossOutput(total=mse, components={"reward": mse})

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        out = self.loss(batch)
        total = out.total
        if 0 <= self.config.nan_after <= self.global_step:
            total = total * float("nan")
        self.log_dict({"train/loss/total": total, "train/loss/reward": out.components["reward"]})
        return total

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.config.lr)

    def act(self, obs: Any, state: Any = None, **kwargs: Any) -> tuple[torch.Tensor, Any]:
        self.acted += 1
        action = torch.zeros(obs.shape[0], self.config.action_dim, device=obs.device)
        action[:, 0] = 1.0
        return action, state


@pytest.fixture
def double() -> Any:
    """Build the test double for an environment spec: ``double(spec, **config)``."""

    def make(spec: Any, **config: Any) -> RewardRegressor:
        return RewardRegressor(
            {
                "obs_shape": list(spec.obs["obs"].shape),
                "action_dim": spec.action_dim,
                "action_kind": spec.action_kind,
                **config,
            }
        )

    return make


#: Overrides that keep a composed run small and quiet.
FAST = [
    "device=cpu",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "data.prefill=32",
    "data.env_steps=80",
    "data.capacity=2000",
    "threads=1",
    "eval.episodes=1",  # the final evaluation stays cheap
]


@pytest.fixture
def compose_train(tmp_path: Path) -> Any:
    """Compose ``conf/train.yaml`` with overrides, as the app would, writing to ``tmp_path``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    import worldflux.train  # noqa: F401  (registers the run-name resolver)
    from worldflux.catalog import conf_dir

    def make(*overrides: str, run_dir: Path | None = None) -> Any:
        GlobalHydra.instance().clear()
        with initialize_config_dir(str(conf_dir()), version_base="1.3"):
            fast = [o for o in FAST if "data=offline" not in overrides or not o.startswith("data.")]
            cfg = compose("train", overrides=[*fast, *overrides], return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(run_dir or tmp_path)
            cfg.hydra.job.override_dirname = ""
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        return cfg

    yield make
    GlobalHydra.instance().clear()
