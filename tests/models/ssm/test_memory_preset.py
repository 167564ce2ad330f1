"""``ssm:memory`` is ``ssm:ci`` with the recorded memory setting, and the two memory experiments
give both models the same task, data and budget (what docs/learning.md, ssm, "Delay 4" and the slow ``test_ssm_memory_learning.py`` rely on)."""

from __future__ import annotations

import dataclasses

from hydra import compose, initialize_config_dir

from worldflux import catalog, get_config

#: The overrides of the recorded delay-2 and delay-4 ``ssm:ci`` runs (docs/learning.md).
RECORDED = {
    "dynamics.blocks": 1,
    "dynamics.dt_min": 0.1,
    "dynamics.dt_max": 1.0,
    "model_lr": 1e-3,
    "ssm_lr": 1e-3,
    "actor_lr": 3e-4,
    "critic_lr": 3e-4,
    "batch_size": 8,
    "batch_length": 32,
    "train_ratio": 128.0,
}


def test_ssm_memory_is_ssm_ci_with_the_recorded_overrides() -> None:
    memory = dataclasses.asdict(get_config("ssm:memory"))
    recorded = dataclasses.asdict(get_config("ssm:ci", **RECORDED))
    assert memory == recorded
    assert memory != dataclasses.asdict(get_config("ssm:ci"))
    assert catalog.info("ssm:memory")["params"] == "~29K"


def test_memory_experiments_share_task_data_and_budget() -> None:
    with initialize_config_dir(config_dir=str(catalog.conf_dir()), version_base="1.3"):
        ssm = compose("train", overrides=["experiment=memory_ssm"])
        dreamer = compose("train", overrides=["experiment=memory_dreamer"])
    assert ssm.model.family == "ssm" and ssm.model.dynamics.blocks == 1
    assert dreamer.model.family == "dreamerv3"
    assert ssm.env == dreamer.env
    assert (ssm.env.mode, ssm.env.delay, ssm.env.length) == ("repeat", 4, 16)
    assert ssm.data == dreamer.data
    assert (ssm.data.batch_size, ssm.data.batch_length, ssm.data.train_ratio) == (8, 32, 128)
    # 12,000 updates: (env_steps - prefill) * train_ratio / (batch_size * batch_length)
    updates = (ssm.data.env_steps - ssm.data.prefill) * ssm.data.train_ratio
    assert updates // (ssm.data.batch_size * ssm.data.batch_length) == 12_000
    # the same world-model learning rate, no warm-up for DreamerV3
    assert ssm.model.model_lr == dreamer.model.lr == 1e-3 and dreamer.model.warmup == 0
    assert ssm.eval == dreamer.eval
