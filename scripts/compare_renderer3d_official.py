"""Compare worldflux's GQN (renderer3d:gqn) with iShohei220/torch-gqn: same weights, same inputs.

Usage::

    git --git-dir=<mirror of iShohei220/torch-gqn> archive c0156c7 | tar -x -C /tmp/torch-gqn
    python scripts/compare_renderer3d_official.py --official /tmp/torch-gqn

The reference is imported from ``--official`` (its ``model.py``); nothing of it is copied into
worldflux. Its ``GQN(representation="pool", L=12, shared_core=True)`` is built with a fixed seed,
its state dict is loaded into ours through :func:`worldflux.models.renderer3d.weights.
reference_to_ours` (``create_world_model("renderer3d:gqn", action_conditioned=False)``), and both
get identical inputs and identical random draws (``torch.manual_seed`` before each call; the two
codes draw their posterior and prior samples in the same order). Prints a table of max abs
differences: the scene representation, the per-scene ELBO at the start and end of the sigma
schedule, the gradient of the ELBO, and prior samples (``generate``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import Tensor

from worldflux import create_world_model
from worldflux.models.renderer3d.weights import reference_to_ours

ROWS: list[tuple[str, float, float]] = []


def record(name: str, official: Tensor, ours: Tensor) -> None:
    official, ours = official.detach().float(), ours.detach().float().reshape(official.shape)
    ROWS.append((name, (official - ours).abs().max().item(), official.abs().max().item()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--official", required=True, help="torch-gqn checkout root")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--views", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(args.official)))
    from model import GQN  # the reference's module, imported from --official

    torch.manual_seed(0)
    ref = GQN(representation="pool", L=12, shared_core=True)
    ours = create_world_model("renderer3d:gqn", action_conditioned=False)
    ours.load_state_dict(reference_to_ours(ref.state_dict()))
    ref.eval(), ours.eval()
    print(
        f"parameters: reference {sum(p.numel() for p in ref.parameters()):,}, "
        f"ours {ours.num_parameters():,}"
    )

    b, m = args.batch, args.views
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(b, m, 3, 64, 64, generator=gen)
    v = torch.randn(b, m, 7, generator=gen)
    x_q = torch.rand(b, 3, 64, 64, generator=gen)
    v_q = torch.randn(b, 7, generator=gen)

    r_ref = sum(ref.phi(x[:, k], v[:, k]) for k in range(m)).flatten(1)
    r_ours = ours.encoder.pool(ours.encoder(x, v))
    record("representation r (B, 256)", r_ref, r_ours)

    for sigma, step in ((2.0, 0), (0.7, 200_000)):
        torch.manual_seed(2)
        elbo_ref = ref(x, v, v_q, x_q, sigma)
        torch.manual_seed(2)
        kl, mean, _ = ours.renderer.elbo_terms(r_ours, x_q, v_q)
        nll = -torch.distributions.Normal(mean, ours.renderer.pixel_sigma(step)).log_prob(x_q)
        record(f"ELBO per scene, sigma {sigma}", elbo_ref, -(nll.sum((1, 2, 3)) + kl))

    torch.manual_seed(3)
    (-ref(x, v, v_q, x_q, 2.0).mean()).backward()
    torch.manual_seed(3)
    loss, _ = ours.renderer.loss(
        ours.encoder.pool(ours.encoder(x, v)), x_q[:, None], v_q[:, None], step=0
    )
    loss.backward()
    ref_grads = dict(ref.named_parameters())
    mapped = reference_to_ours({k: p.grad for k, p in ref_grads.items()})
    ours_grads = dict(ours.named_parameters())
    worst = max(mapped, key=lambda k: (mapped[k] - ours_grads[k].grad).abs().max().item())
    record(f"gradient of -ELBO (worst tensor: {worst})", mapped[worst], ours_grads[worst].grad)

    torch.manual_seed(4)
    gen_ref = ref.generate(x, v, v_q)
    torch.manual_seed(4)
    gen_ours = ours.renderer.render(r_ours.detach(), v_q[:, None], 64, 64)[:, 0]
    record("generate (prior sample means, clamped)", gen_ref, gen_ours)

    print("\n| quantity | max abs diff | max abs reference |\n|---|---|---|")
    for name, diff, scale in ROWS:
        print(f"| {name} | {diff:.3g} | {scale:.3g} |")


if __name__ == "__main__":
    main()
