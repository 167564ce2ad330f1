"""The cell tokenizer: IRIS's tokenizer whose tokens each see only their own cell.

A worldflux component option (``conf/model/token/tokenizer/vqvae_cell.yaml``) for grid worlds
such as Catch; ``token:base`` keeps IRIS's whole-frame encoder.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from worldflux import create_world_model
from worldflux.models.token.tokenizer import CellTokenizer, Tokenizer

ROOT = Path(__file__).resolve().parents[3]
CELL = {"_target_": "worldflux.models.token.tokenizer.CellTokenizer"}


def _models() -> tuple[object, object]:
    torch.manual_seed(0)
    iris = create_world_model("token:ci", action_dim=3, obs_shape=[3, 16, 16], norm_groups=1)
    torch.manual_seed(0)
    cell = create_world_model(
        "token:ci", action_dim=3, obs_shape=[3, 16, 16], norm_groups=1, tokenizer=CELL
    )
    return iris, cell


def test_the_config_swap_builds_it_with_irises_parameters() -> None:
    iris, cell = _models()
    assert type(cell.tokenizer) is CellTokenizer and type(iris.tokenizer) is Tokenizer
    a, b = iris.tokenizer.state_dict(), cell.tokenizer.state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a)
    option = yaml.safe_load((ROOT / "conf/model/token/tokenizer/vqvae_cell.yaml").read_text())
    assert option == CELL


def test_a_token_depends_on_its_own_cell_only() -> None:
    iris, cell = _models()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    changed = x.clone()
    changed[0, :, 4:8, 8:12] = 0.7  # cell (row 1, column 2) of the 4 x 4 token grid
    for model, local in ((cell, True), (iris, False)):
        moved = (model.tokenizer.encode(changed).z - model.tokenizer.encode(x).z).abs().sum(-3)
        assert not moved[1].any()  # the other frame of the batch is untouched
        assert moved[0, 1, 2] > 0
        others = moved[0].flatten()[torch.arange(16) != 6]
        assert bool((others == 0).all()) is local, model


def test_each_cell_is_encoded_as_a_frame_of_its_own() -> None:
    _, cell = _models()
    tok = cell.tokenizer
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    z = tok.features(x)
    assert z.shape == (1, 16, 4, 4)
    for r, c in ((0, 0), (1, 3), (3, 2)):
        alone = tok.encoder(x[:, :, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4])[0, :, 0, 0]
        torch.testing.assert_close(z[0, :, r, c], alone)
