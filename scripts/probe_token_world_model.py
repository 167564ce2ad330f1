"""Does a bigger GPT imagine Catch better? Retrain IRIS's world model on a frozen tokenizer.

Takes the tokenizer of a ``token`` checkpoint trained on the 4 x 4 embedded Catch, freezes it,
and trains a fresh ``token:ci`` world model of ``LAYERS`` layers and width ``WIDTH`` (AdamW 1e-3,
decay 0.01, batch 16 windows of 9 steps) for ``SECONDS`` of wall time on 400 random-policy
episodes (seeds 0-399); then prints the held-out teacher-forced accuracies
(:func:`worldflux.models.token.evaluate.held_out_accuracy`, 50 episodes from seed 10,000) and the
open-loop check of ``probe_token_policy.py`` (do imagined frames keep the ball and paddle?).

    python scripts/probe_token_world_model.py CHECKPOINT LAYERS WIDTH SECONDS
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from worldflux import create_world_model
from worldflux.models.token.evaluate import _windows, catch_episodes, held_out_accuracy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from probe_token_policy import open_loop  # noqa: E402


def main() -> None:
    ckpt, layers, width, budget = (
        sys.argv[1],
        int(sys.argv[2]),
        int(sys.argv[3]),
        float(sys.argv[4]),
    )
    torch.set_num_threads(1)
    torch.manual_seed(0)
    geo = {"size": 16, "rows": 4, "cols": 4}
    src = create_world_model(ckpt)
    model = create_world_model(
        "token:ci", action_dim=3, max_blocks=8, batch_length=9, num_layers=layers,
        wm_embed_dim=width,
    )  # fmt: skip
    model.tokenizer.load_state_dict(src.tokenizer.state_dict())
    model.tokenizer.eval()
    train = _windows(catch_episodes(400, seed=0, **geo), 9)
    opt = torch.optim.AdamW(model.world_model.parameters(), lr=1e-3, weight_decay=0.01)
    rng = np.random.default_rng(0)
    start, updates, loss = time.time(), 0, torch.zeros(())
    while time.time() - start < budget:
        idx = torch.as_tensor(rng.integers(train["obs"].shape[0], size=16))
        loss = model.world_model_loss({k: v[idx] for k, v in train.items()}).total
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.world_model.parameters(), 10.0)
        opt.step()
        updates += 1
    print(f"{layers} layers, width {width}: {updates} updates, last loss {loss.item():.3f}")
    model.eval()
    scores = held_out_accuracy(model, catch_episodes(50, **geo))
    print({k: round(v, 3) for k, v in scores.items()})
    open_loop(model, catch_episodes(50, **geo), geo)


if __name__ == "__main__":
    main()
