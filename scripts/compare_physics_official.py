"""Compare worldflux's physics family with hamiltonian-nn (the HNN reference): same weights.

Usage::

    git --git-dir=<mirror of greydanus/hamiltonian-nn> archive bcc3622 hnn.py nn_models.py \\
        utils.py | tar -x -C /tmp/hnn_official
    pip install scipy imageio          # the reference's utils.py imports them (in its own venv)
    python scripts/compare_physics_official.py --official /tmp/hnn_official

The reference modules (``hnn.py``, ``nn_models.py``, ``utils.py``) are imported from
``--official``; nothing of them is copied into worldflux. Each setting builds the reference model
with its own initialisation (seeded), copies its state dict into ours with
:func:`worldflux.models.physics.loading.load_reference_state_dict`, and compares on identical
inputs: the vector field (``time_derivative``), the training loss (``L2_loss`` on the time
derivatives; ours sees the same targets as finite differences over one ``euler`` step), the
gradients of that loss, and one RK4 step (``utils.rk4``). PixelHNN compares the encoder, decoder,
latent field and the loss of ``experiment-pixels/train.py`` assembled from the reference model's
own ``encode``/``decode``/``time_derivative`` (that script needs its data pipeline to import).
Prints a table of max abs differences.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import Tensor

from worldflux import create_world_model
from worldflux.models.physics import dynamics
from worldflux.models.physics.loading import load_reference_state_dict

ROWS: list[tuple[str, str, float, float]] = []


def record(setting: str, name: str, reference: Tensor, ours: Tensor) -> None:
    reference, ours = reference.detach().double(), ours.detach().double().reshape(reference.shape)
    ROWS.append(
        (setting, name, (reference - ours).abs().max().item(), reference.abs().max().item())
    )


def vector_setting(ref: dict, setting: str, dim: int, baseline: bool, field_type: str) -> None:
    """HNN (or the baseline MLP) on ``dim``-d states: field, loss, gradients, RK4 step."""
    torch.manual_seed(0)
    mlp = ref["nn_models"].MLP(dim, 200, dim if baseline else 2, "tanh")
    official = ref["hnn"].HNN(
        dim, differentiable_model=mlp, field_type=field_type, baseline=baseline
    )
    ours = create_world_model(
        "physics:base", obs_shape=[dim], baseline=baseline, field_type=field_type, dt=0.1
    )
    load_reference_state_dict(ours, official.state_dict())

    gen = torch.Generator().manual_seed(1)
    x = torch.randn(64, dim, generator=gen)
    dxdt = torch.randn(64, dim, generator=gen)
    record(setting, "field dx/dt", official.time_derivative(x.clone().requires_grad_(True)),
           ours.time_derivative(x))  # fmt: skip

    loss_ref = ref["utils"].L2_loss(dxdt, official.time_derivative(x.clone().requires_grad_(True)))
    loss_ref.backward()
    batch = {"obs": torch.stack([x, x + 0.1 * dxdt], 1), "action": torch.zeros(64, 2, 1)}
    loss_ours = ours.loss(batch).total
    loss_ours.backward()
    record(setting, "loss (L2 on dx/dt)", loss_ref, loss_ours)
    grads_ref = dict(official.named_parameters())
    for name, p in ours.field_net.named_parameters():
        record(setting, f"grad {name}", grads_ref[f"differentiable_model.{name}"].grad, p.grad)

    step_ref = x + ref["utils"].rk4(
        lambda y, t: official.time_derivative(y.detach().requires_grad_(True)).detach(), x, 0, 0.1
    )
    record(setting, "rk4 step", step_ref, ours.transition(x, torch.zeros(64, 1)))


def pixel_setting(ref: dict) -> None:
    """PixelHNN: autoencoder 1568 -> 200 -> 2 (relu) and the latent HNN."""
    torch.manual_seed(0)
    ae = ref["nn_models"].MLPAutoencoder(2 * 28 * 28, 200, 2, nonlinearity="relu")
    official = ref["hnn"].PixelHNN(2, 200, autoencoder=ae, nonlinearity="tanh")
    ours = create_world_model("physics:pixel_hnn")
    load_reference_state_dict(ours, official.state_dict())
    gen = torch.Generator().manual_seed(2)
    frames = torch.randint(0, 256, (32, 2, 2, 28, 28), dtype=torch.uint8, generator=gen)
    x = frames[:, 0].reshape(32, -1).float() / 255.0
    x_next = frames[:, 1].reshape(32, -1).float() / 255.0
    z, z_next = official.encode(x), official.encode(x_next)
    record("pixel_hnn", "encode", z, ours.encode(frames[:, 0]))
    record("pixel_hnn", "decode", official.decode(z), ours.decode(z)["obs"].reshape(32, -1))
    zg = z.detach().clone().requires_grad_(True)
    record("pixel_hnn", "latent field", official.time_derivative(zg), ours.time_derivative(z))
    # experiment-pixels/train.py pixelhnn_loss with input_noise 0, from the reference's own methods
    ae_loss = ((x - official.decode(z)) ** 2).mean(1)
    hnn_loss = ((z_next - (z + official.time_derivative(z))) ** 2).mean(1)
    w, dw = z.split(1, 1)
    cc_loss = ((dw - (z_next.split(1, 1)[0] - w)) ** 2).mean(1)
    loss_ref = (ae_loss + cc_loss + 1e-1 * hnn_loss).mean()
    loss_ours = ours.loss({"obs": frames, "action": torch.zeros(32, 2, 1)}).total
    record("pixel_hnn", "loss", loss_ref, loss_ours)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", required=True, help="folder with hnn.py, nn_models.py")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(args.official)))
    import hnn as ohnn  # noqa: PLC0415 - the reference, from --official
    import nn_models as onn  # noqa: PLC0415
    import utils as outils  # noqa: PLC0415

    ref = {"hnn": ohnn, "nn_models": onn, "utils": outils}
    assert dynamics.INTEGRATORS  # the integrators compared are ours
    vector_setting(ref, "hnn spring (2-d)", 2, baseline=False, field_type="solenoidal")
    vector_setting(ref, "hnn field_type=both (4-d)", 4, baseline=False, field_type="both")
    vector_setting(ref, "baseline MLP (2-d)", 2, baseline=True, field_type="solenoidal")
    pixel_setting(ref)
    print("| setting | quantity | max abs diff | max abs value |")
    print("|---|---|---|---|")
    for setting, name, diff, scale in ROWS:
        print(f"| {setting} | {name} | {diff:.2e} | {scale:.2e} |")
    worst = max(d / max(s, 1e-12) for _, _, d, s in ROWS)
    print(f"\nworst relative difference: {worst:.2e}")


if __name__ == "__main__":
    main()
