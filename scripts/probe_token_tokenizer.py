"""Does IRIS's tokenizer keep the Catch ball and paddle? Train it alone and read them back.

Trains the tokenizer of ``token:ci`` (with preset overrides) on frames of every Catch state drawn
uniformly (ball cell x paddle column; 16x16 frames of the 8 x 5 grid unless ``--rows/--cols/
--size`` say otherwise) and prints, every ``--every`` updates, the L1 reconstruction and
:func:`worldflux.models.token.evaluate.object_accuracy` (ball and paddle read back from the
decoded frame; chance ``1 / ((rows - 1) cols)`` and ``1 / cols``) and, when each grid cell is
one token, how consistently black cells get one code (``background code``: the share of black
cells' tokens equal to the most common code of their cell position, ``per cell``, and over all
positions, ``global``, and the number of codes they use). ``--loss vq`` is IRIS's loss
(codebook + commitment + L1, no LPIPS as in ``token:ci``); ``ae-l1`` / ``ae-l2`` skip the
quantiser (decoder on the encoder's output) with an L1 / squared error, to tell the quantiser
from the loss.

    python scripts/probe_token_tokenizer.py --updates 300 [--lr 1e-3] [--batch 32] \
        [--loss vq|ae-l1|ae-l2] [--rows 4 --cols 4] [vocab_size=64 embed_dim=8 ...]
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
from worldflux.envs.embedded import Catch
from worldflux.models.token.evaluate import object_accuracy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from probe_token_world_model import code_consistency  # noqa: E402


@torch.no_grad()
def background(model: object, data: torch.Tensor, black: torch.Tensor) -> str:
    """Share of black cells' tokens equal to their most common code, and the codes used
    (only when the token grid is the Catch grid)."""
    tokens = model.encode(data)  # type: ignore[attr-defined]
    if tokens.shape[1] != black[0].numel():
        return ""
    return code_consistency(tokens, black.flatten(1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--updates", type=int, default=300)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--loss", choices=("vq", "ae-l1", "ae-l2"), default="vq")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rows", type=int, default=8, help="Catch grid rows")
    p.add_argument("--cols", type=int, default=5, help="Catch grid columns")
    p.add_argument("--size", type=int, default=16, help="frame side in pixels")
    p.add_argument("overrides", nargs="*", help="token:ci fields, key=value")
    a = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    over = {k: ast.literal_eval(v) for k, v in (o.split("=", 1) for o in a.overrides)}
    over.setdefault("obs_shape", [3, a.size, a.size])
    model = create_world_model("token:ci", action_dim=3, **over)
    catch = Catch(size=a.size, rows=a.rows, cols=a.cols, seed=a.seed)
    geometry = {"size": a.size, "rows": a.rows, "cols": a.cols}
    frames = []
    for r in range(a.rows - 1):
        for c in range(a.cols):
            for pad in range(a.cols):  # the embedded Catch has no public state setter
                catch._ball[:] = (r, c)
                catch._paddle = pad
                frames.append(catch.render().transpose(2, 0, 1))
    data = torch.as_tensor(np.stack(frames))
    grids = [(r, c, pad) for r in range(a.rows - 1) for c in range(a.cols) for pad in range(a.cols)]
    black = torch.ones(len(grids), a.rows, a.cols, dtype=torch.bool)
    for i, (r, c, pad) in enumerate(grids):
        black[i, r, c] = black[i, a.rows - 1, pad] = False
    tok = model.tokenizer
    opt = torch.optim.Adam(tok.parameters(), lr=a.lr)
    rng = np.random.default_rng(a.seed)
    start, rec = time.time(), float("nan")
    for u in range(a.updates + 1):
        if u % a.every == 0:
            print(f"update {u}: L1 {rec:.4f} objects {object_accuracy(model, **geometry)} "
                  f"{background(model, data, black)} {time.time() - start:.0f}s", flush=True)  # fmt: skip
        obs = data[rng.integers(len(data), size=a.batch)]
        if a.loss == "vq":
            out = model.tokenizer_loss({"obs": obs[:, None]})
            loss, rec = out.total, float(out.components["reconstruction"].detach())
        else:
            x = model.frames(obs, 1)
            err = tok.decode(tok.encode(x).z) - x
            loss = err.abs().mean() if a.loss == "ae-l1" else err.pow(2).mean()
            rec = float(err.detach().abs().mean())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tok.parameters(), 10.0)
        opt.step()


if __name__ == "__main__":
    main()
