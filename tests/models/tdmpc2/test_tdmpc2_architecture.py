"""TD-MPC2 architecture: parameter counts of every size against the official implementation,
the layers (SimNorm, the vectorised Q ensemble) and the initialisation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from worldflux import get_config
from worldflux.models.tdmpc2.config import TDMPC2Config
from worldflux.models.tdmpc2.module import TDMPC2
from worldflux.models.tdmpc2.networks import QEnsemble, SimNorm

#: Learnable parameters of nicklashansen/tdmpc2 @ e9f5932 (../shared/REFERENCES.md):
#: walker-walk, dog-run, mt80.
OFFICIAL = {
    "1m": (1_214_651, 1_339_387, 1_435_067),
    "5m": (4_960_618, 5_159_082, 5_389_930),
    "19m": (18_062_442, 18_561_194, 18_970_218),
    "48m": (47_208_298, 48_081_066, 48_791_146),
    "317m": (312_595_417, 314_983_449, 317_383_129),
}
SETTINGS = ("walker_walk", "dog_run", "mt80")


@pytest.mark.parametrize("size", list(OFFICIAL))
@pytest.mark.parametrize("setting", range(3), ids=SETTINGS)
def test_parameter_count_matches_official(size: str, setting: int) -> None:
    overrides = TDMPC2Config.REFERENCE_SETTINGS[SETTINGS[setting]]
    with torch.device("meta"):
        model = TDMPC2(get_config(f"tdmpc2:{size}", **overrides))
    assert model.num_parameters() == OFFICIAL[size][setting]


def test_5m_walker_breakdown_and_targets_not_counted() -> None:
    with torch.device("meta"):
        model = TDMPC2(get_config("tdmpc2:5m"))
    parts = model.parameter_breakdown()
    assert parts == {
        "encoder": 139_520,
        "dynamics": 794_112,
        "reward": 582_245,
        "termination": 0,
        "policy": 533_516,
        "q_ensemble": 2_911_225,
        "task_emb": 0,
    }
    assert all(not p.requires_grad for p in model.target_q.parameters())
    assert model.num_parameters(trainable_only=False) == 4_960_618 + 2_911_225


def test_episodic_adds_termination_head() -> None:
    with torch.device("meta"):
        model = TDMPC2(get_config("tdmpc2:5m", episodic=True))
    # Linear(512, 512) + LN, Linear(512, 512) + LN, Linear(512, 1)
    assert model.parameter_breakdown()["termination"] == 2 * (512 * 512 + 3 * 512) + 513


def test_num_q_networks_field_and_alias() -> None:
    config = get_config("tdmpc2:5m", obs_shape=(100,))
    config.num_q_networks = 10
    assert config.num_q == 10
    with torch.device("meta"):
        model = TDMPC2(config)
    assert model.q_ensemble.num_q == 10 and model.target_q.num_q == 10


def test_simnorm_groups_are_softmaxes() -> None:
    x = torch.randn(4, 32)
    y = SimNorm(8)(x)
    assert y.shape == x.shape
    groups = y.view(4, 4, 8)
    torch.testing.assert_close(groups.sum(-1), torch.ones(4, 4))
    torch.testing.assert_close(groups, torch.softmax(x.view(4, 4, 8), -1))


def test_q_ensemble_equals_independent_mlps() -> None:
    q = QEnsemble(latent_dim=8, action_dim=2, mlp_dim=16, num_bins=5, num_q=3, dropout=0.0)
    for p in q.parameters():
        torch.nn.init.normal_(p)
    x = torch.randn(7, 10)
    out = q(x)
    assert out.shape == (3, 7, 5)
    for e in range(3):
        h = x
        for i in range(2):
            lin = q.layers[i]
            h = F.linear(h, lin.weight[e], lin.bias[e])
            h = F.mish(F.layer_norm(h, (16,), q.ln_weight[i, e], q.ln_bias[i, e]))
        h = F.linear(h, q.layers[2].weight[e], q.layers[2].bias[e])
        torch.testing.assert_close(out[e], h)
    pair = torch.tensor([2, 0])
    torch.testing.assert_close(q(x, members=pair), out[pair])


def test_official_initialisation() -> None:
    model = TDMPC2(get_config("tdmpc2:ci"))
    assert torch.count_nonzero(model.reward.net[-1].weight) == 0
    assert torch.count_nonzero(model.q_ensemble.layers[-1].weight) == 0
    w = model.dynamics.net[0].weight
    assert (
        abs(w.std().item() - 0.02) < 0.005 and torch.count_nonzero(model.dynamics.net[0].bias) == 0
    )


def test_target_q_stays_in_eval_mode() -> None:
    model = TDMPC2(get_config("tdmpc2:ci"))
    model.train()
    assert model.q_ensemble.training and not model.target_q.training


def test_multitask_masks_and_discounts() -> None:
    config = get_config(
        "tdmpc2:ci", num_tasks=3, task_action_dims=[2, 6, 4], task_episode_lengths=[1000, 500, 100]
    )
    model = TDMPC2(config)
    assert model.task_emb.weight.shape == (3, 96)
    assert model.action_masks.sum(-1).tolist() == [2, 6, 4]
    torch.testing.assert_close(model.discounts, torch.tensor([0.995, 0.99, 0.95]))


def test_pixel_encoder_builds_for_64x64() -> None:
    with torch.device("meta"):
        model = TDMPC2(get_config("tdmpc2:5m", obs_shape=(9, 64, 64)))
    # 4 convs of 32 channels: 9*32*49+32, 32*32*25+32, 2 x (32*32*9+32)
    assert model.parameter_breakdown()["encoder"] == 14_144 + 25_632 + 2 * 9_248


def test_layernorm_latent_components() -> None:
    model = TDMPC2(
        get_config(
            "tdmpc2:ci", encoder={"latent_norm": "layernorm"}, dynamics={"latent_norm": "layernorm"}
        )
    )
    z = model.encode(torch.randn(5, 24))
    # LayerNorm output with unit gain and zero bias: zero mean per row, not a simplex
    torch.testing.assert_close(z.mean(-1), torch.zeros(5), atol=1e-5, rtol=0)
    assert not torch.allclose(z.view(5, -1, 8).sum(-1), torch.ones(5, 2))
