"""Can the S5 stack alone learn "name the symbol shown ``lag`` steps ago"? (supervised, no RL)

A linear embedding of random one-hot symbols goes through :class:`worldflux.models.ssm.s5.S5Stack`
(or a GRU of the same width, ``--core gru``) and a linear read-out is trained with cross-entropy
to name the symbol ``lag`` steps back at every step (sequences of ``--length`` steps, every
sequence starting from a zero state). Prints the held-out accuracy every ``--every`` updates and,
for S5, the range of the learned timescales ``dt``. It isolates the recurrent core's memory from
the world model (posterior sampling, reward head, KL).

Usage::

    python scripts/probe_s5_recall.py --lag 2 --updates 2000
    python scripts/probe_s5_recall.py --lag 2 --dt-min 0.1 --dt-max 1.0
    python scripts/probe_s5_recall.py --lag 2 --core gru
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from worldflux.models.ssm.s5 import S5Stack


class Probe(nn.Module):
    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__()
        self.core_kind = args.core
        self.inp = nn.Linear(args.cues, args.units)
        if args.core == "gru":
            self.core = nn.GRU(args.units, args.units, batch_first=True)
        else:
            self.core = S5Stack(
                args.units,
                args.state,
                args.layers,
                blocks=args.blocks,
                dt_min=args.dt_min,
                dt_max=args.dt_max,
            )
        self.out = nn.Linear(args.units, args.cues)

    def forward(self, sym: torch.Tensor, cues: int) -> torch.Tensor:
        u = self.inp(nn.functional.one_hot(sym, cues).float())
        if self.core_kind == "gru":
            y, _ = self.core(u)
        else:
            b, t = sym.shape
            layers, p = len(self.core.layers), self.core.layers[0].state
            x0 = torch.zeros(b, layers, p, dtype=torch.complex64)
            y, _ = self.core(u, x0, torch.zeros(b, t), x0)
        return self.out(y)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--core", default="s5", choices=["s5", "gru"])
    p.add_argument("--lag", type=int, default=2)
    p.add_argument("--cues", type=int, default=2)
    p.add_argument("--units", type=int, default=16)
    p.add_argument("--state", type=int, default=16)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--blocks", type=int, default=8)
    p.add_argument("--dt-min", type=float, default=0.001)
    p.add_argument("--dt-max", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--length", type=int, default=32)
    p.add_argument("--updates", type=int, default=2000)
    p.add_argument("--every", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    model = Probe(args)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(10_000 + args.seed)
    test = torch.randint(0, args.cues, (256, args.length), generator=gen)
    start = time.perf_counter()
    for step in range(args.updates + 1):
        if step % args.every == 0:
            with torch.no_grad():
                pred = model(test, args.cues)[:, args.lag :].argmax(-1)
                acc = (pred == test[:, : args.length - args.lag]).float().mean()
            extra = ""
            if args.core == "s5":
                dt = torch.cat([la.log_step.exp().flatten() for la in model.core.layers])
                extra = f" dt in [{dt.min():.4f}, {dt.max():.4f}] median {dt.median():.4f}"
            print(
                f"update {step} ({time.perf_counter() - start:.0f} s) held-out acc "
                f"{acc:.3f}{extra}",
                flush=True,
            )
        if step == args.updates:
            break
        sym = torch.randint(0, args.cues, (args.batch, args.length))
        logits = model(sym, args.cues)[:, args.lag :]
        loss = nn.functional.cross_entropy(
            logits.reshape(-1, args.cues), sym[:, : args.length - args.lag].reshape(-1)
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


if __name__ == "__main__":
    main()
