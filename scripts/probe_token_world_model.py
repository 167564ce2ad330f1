"""Does IRIS's world model imagine Catch well enough? Retrain it on a frozen tokenizer.

Takes the tokenizer of a ``token`` checkpoint trained on the 4 x 4 embedded Catch (or, with
``--tokenizer-updates N``, trains a fresh ``token:ci`` tokenizer alone for ``N`` updates on
the frames of 400 random-policy episodes, batch 32, Adam 1e-3, with ``token:ci`` overrides
``key=value``), freezes it, prints how consistently it codes black cells (``background code``),
and trains a fresh ``token:ci`` world model of ``--layers`` layers and width
``--width`` (AdamW 1e-3, decay 0.01, batch 16 windows of 9 steps) for ``--updates`` updates (or
``--seconds`` of wall time) on 400 random-policy episodes (seeds 0-399); then prints the
held-out teacher-forced accuracies (:func:`worldflux.models.token.evaluate.held_out_accuracy`,
50 episodes from seed 10,000), the open-loop check of ``probe_token_policy.py`` (do imagined
frames keep the ball and paddle?) and the imagined reward per step of the scripted catcher
against random actions (does imagination reward catching?), and the per-row accuracy and
paddle check of ``probe_token_policy.py`` (does the imagined paddle follow the action?).
``--every N`` prints the held-out token and reward accuracies every ``N`` updates; ``--seed``
seeds the model and its batches; ``--blocks N`` sets the GPT's context (windows of ``N + 1``);
``--all-starts`` trains on windows at every start in the episode, as the replay samples them
(otherwise only at the held-out evaluation's starts, 0 and 4 for 13-step episodes).
``--save-model DIR`` writes the model (``save_pretrained``) for ``token_true_dynamics.py
--imagine DIR``.

    python scripts/probe_token_world_model.py --checkpoint CKPT [--layers 1 --width 32] --seconds 200
    python scripts/probe_token_world_model.py --tokenizer-updates 1500 --updates 1500 \
        --save-tokenizer /tmp/tok.pt
    python scripts/probe_token_world_model.py --load-tokenizer /tmp/tok.pt --layers 2 --width 64 \
        --updates 1500
"""

from __future__ import annotations

import argparse
import ast
import sys
import time
from pathlib import Path

import numpy as np
import torch

from worldflux import create_world_model
from worldflux.models.token.evaluate import (
    _windows,
    catch_episodes,
    held_out_accuracy,
    object_accuracy,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from probe_token_policy import (  # noqa: E402
    imagined_reward,
    open_loop,
    paddle_check,
    row_accuracy,
)

GEO = {"size": 16, "rows": 4, "cols": 4}


def train_tokenizer(model: torch.nn.Module, updates: int) -> None:
    """The tokenizer alone on frames of every 4 x 4 Catch state (as probe_token_tokenizer.py)."""
    train = catch_episodes(400, seed=0, **GEO)["obs"].flatten(0, 1)
    opt = torch.optim.Adam(model.tokenizer.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    start = time.time()
    for u in range(1, updates + 1):
        obs = train[rng.integers(len(train), size=32)]
        loss = model.tokenizer_loss({"obs": obs[:, None]}).total
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.tokenizer.parameters(), 10.0)
        opt.step()
        if u % 500 == 0 or u == updates:
            print(f"tokenizer {u}: {object_accuracy(model, **GEO)} {time.time() - start:.0f}s")


@torch.no_grad()
def background_code(model: torch.nn.Module, obs: torch.Tensor) -> str:
    """Share of the black cells' tokens (one token per 4x4-pixel cell) equal to their most
    common code, and the number of codes they use, over the frames ``obs`` ``(N, 3, H, W)``."""
    tokens = model.tokenizer.encode(model.frames(obs, 1)).tokens  # (N, K)
    side = GEO["size"] // GEO["rows"]
    cells = obs.unfold(2, side, side).unfold(3, side, side)  # (N, 3, rows, cols, side, side)
    black = (cells.flatten(-2).amax(-1).amax(1) == 0).flatten(1)  # (N, K)
    if tokens.shape[1] != black.shape[1]:
        return "background code: the token grid is not the Catch grid"
    return code_consistency(tokens, black)


def code_consistency(tokens: torch.Tensor, black: torch.Tensor) -> str:
    """How consistently black cells are coded: the share of their tokens equal to the most
    common code over all cells (``global``) and, per cell position, to that position's most
    common code (``per cell``, what a world model needs: a black cell's token that does not
    depend on the rest of the frame), and the number of codes black cells use."""
    codes = tokens[black]
    same = float((codes == codes.mode().values).float().mean())
    hits = sum(int((tokens[black[:, k], k] == tokens[black[:, k], k].mode().values).sum())
               for k in range(tokens.shape[1]) if black[:, k].any())  # fmt: skip
    return (
        f"background code: global {same:.3f}, per cell {hits / len(codes):.3f} "
        f"({len(codes.unique())} codes)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint")
    p.add_argument("--tokenizer-updates", type=int, default=0)
    p.add_argument("--save-tokenizer", help="write the tokenizer's state dict here")
    p.add_argument("--load-tokenizer", help="read the tokenizer's state dict from here")
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--blocks", type=int, default=8, help="GPT context in steps (windows of N + 1)")
    p.add_argument("--updates", type=int, default=0, help="world-model updates (0: --seconds)")
    p.add_argument("--seconds", type=float, default=200.0)
    p.add_argument("--seed", type=int, default=0, help="torch seed of the model and its training")
    p.add_argument(
        "--all-starts",
        action="store_true",
        help="train on windows at every start in the episode (as the replay samples them), "
        "not only the held-out evaluation's two",
    )
    p.add_argument("--every", type=int, default=0, help="print held-out accuracies every N updates")
    p.add_argument("--save-model", help="save the model (save_pretrained) to this folder")
    p.add_argument("overrides", nargs="*", help="token:ci fields, key=value")
    a = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    over = {k: ast.literal_eval(v) for k, v in (o.split("=", 1) for o in a.overrides)}
    model = create_world_model(
        "token:ci", action_dim=3, max_blocks=a.blocks, batch_length=a.blocks + 1,
        num_layers=a.layers, wm_embed_dim=a.width, **over,
    )  # fmt: skip
    if a.checkpoint:
        model.tokenizer.load_state_dict(create_world_model(a.checkpoint).tokenizer.state_dict())
    elif a.load_tokenizer:
        model.tokenizer.load_state_dict(torch.load(a.load_tokenizer, weights_only=True))
    else:
        train_tokenizer(model, a.tokenizer_updates)
    if a.save_tokenizer:
        torch.save(model.tokenizer.state_dict(), a.save_tokenizer)
    model.tokenizer.eval()
    print(
        "held-out frames:", background_code(model, catch_episodes(50, **GEO)["obs"].flatten(0, 1))
    )
    episodes = catch_episodes(400, seed=0, **GEO)
    if a.all_starts:
        steps = episodes["obs"].shape[1]
        train = {
            k: torch.cat([v[:, s : s + a.blocks + 1] for s in range(steps - a.blocks)])
            for k, v in episodes.items()
        }
    else:
        train = _windows(episodes, a.blocks + 1)
    held_out = catch_episodes(50, **GEO)
    opt = torch.optim.AdamW(model.world_model.parameters(), lr=1e-3, weight_decay=0.01)
    rng = np.random.default_rng(a.seed)
    start, updates, loss = time.time(), 0, torch.zeros(())
    while (updates < a.updates) if a.updates else (time.time() - start < a.seconds):
        idx = torch.as_tensor(rng.integers(train["obs"].shape[0], size=16))
        loss = model.world_model_loss({k: v[idx] for k, v in train.items()}).total
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.world_model.parameters(), 10.0)
        opt.step()
        updates += 1
        if a.every and updates % a.every == 0:
            scores = held_out_accuracy(model, held_out)
            print(f"update {updates} ({time.time() - start:.0f}s): loss {loss.item():.3f}, token "
                  f"{scores['token_accuracy']:.3f}, reward {scores['reward_accuracy']:.3f}, "
                  f"non-zero reward {scores['reward_accuracy_nonzero']:.3f}", flush=True)  # fmt: skip
    print(f"{a.layers} layers, width {a.width}: {updates} updates, last loss {loss.item():.3f}, "
          f"{time.time() - start:.0f}s")  # fmt: skip
    model.eval()
    scores = held_out_accuracy(model, catch_episodes(50, **GEO))
    print({k: round(v, 3) for k, v in scores.items()})
    open_loop(model, catch_episodes(50, **GEO), GEO)
    obs = catch_episodes(50, **GEO)["obs"]
    starts = obs[:, :: max(1, obs.shape[1] // 4)].flatten(0, 1)
    for policy in ("scripted", "random"):
        r = imagined_reward(model, starts, policy, 8, GEO)
        print(f"imagined reward per step, 8 steps, {policy}: {r:.3f}")
    print("teacher-forced next-token accuracy per grid row (the last is the paddle's):")
    row_accuracy(model, catch_episodes(50, **GEO), GEO["rows"])
    print("the paddle after one imagined step:")
    paddle_check(model, catch_episodes(50, **GEO), GEO)
    if a.save_model:
        print("saved to", model.save_pretrained(a.save_model))


if __name__ == "__main__":
    main()
