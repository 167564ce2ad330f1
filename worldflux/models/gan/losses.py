"""GameGAN losses (nv-tlabs/GameGAN_code @ 1195c39, ``trainer.py``).

Generator: adversarial terms of the single-frame, action-conditioned and temporal discriminators
(hinge, or BCE as ``standard_gan_loss``), the info terms (cross-entropy on the action and MSE on
the noise reconstructed from generated transitions, the latter x30), feature matching on the
discriminator's frame features (L1, x10), frame reconstruction (summed squared error per frame,
x0.05), and with memory the alpha sparsity and the cycle loss. Discriminator: real frames with
their actions are real, with wrong actions fake, generated frames fake; its info head classifies
real actions and reconstructs the generated noise; an R1 penalty on real frames (x1 for the
frame/action/info outputs, each x0.33, and x10 for the temporal levels).

Axis legend: ``N = (T - 1) B`` judged frames, ``A`` actions, ``Z`` noise size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from worldflux.models.gan.discriminator import DOut


def gen_adv(logits: Tensor, kind: str) -> Tensor:
    """Generator adversarial loss: ``-mean(D)`` (hinge) or BCE towards real."""
    if kind == "hinge":
        return -logits.mean()
    return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))


def dis_adv(logits: Tensor, real: bool, kind: str) -> Tensor:
    """Discriminator loss for ``logits`` labelled real or fake (hinge or BCE)."""
    if kind == "hinge":
        return F.relu(1.0 - logits).mean() if real else F.relu(1.0 + logits).mean()
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def _mean(terms: list[Tensor], like: Tensor) -> Tensor:
    return torch.stack(terms).mean() if terms else like.new_zeros(())


def generator_terms(
    fake: DOut, real: DOut, labels: Tensor, z: Tensor, kind: str, feature_l2: bool
) -> dict[str, Tensor]:
    """Unweighted generator terms from the discriminator on generated and real frames.

    Args:
        fake: discriminator outputs on the generated frames.
        real: discriminator outputs on the real frames (its features are the matching target).
        labels: ``(N,)`` indices of the actions taken.
        z: ``(N, Z)`` the noise the generator drew.
        kind: ``hinge`` or ``bce``.
        feature_l2: match features with MSE instead of L1.
    """
    single = gen_adv(fake.single, kind)
    if fake.single_patch is not None:
        single = single + gen_adv(fake.single_patch, kind)
    return {
        "g_action": gen_adv(fake.action, kind),
        "g_single_frame": single,
        "g_temporal": _mean([gen_adv(p, kind) for p in fake.temporal], single),
        "g_action_recon": F.cross_entropy(fake.action_recon, labels),
        "g_z_recon": F.mse_loss(fake.z_recon, z),
        "feature_match": feature_matching(fake.features, real.features.detach(), feature_l2),
    }


def feature_matching(fake: Tensor, real: Tensor, l2: bool) -> Tensor:
    """Mean L1 (or MSE) between discriminator features of generated and real frames."""
    return F.mse_loss(fake, real) if l2 else F.l1_loss(fake, real)


def frame_recon(pred: Tensor, target: Tensor) -> Tensor:
    """Squared error summed over pixels, averaged over frames (``size_average=False / N``)."""
    return (pred - target.detach()).pow(2).sum() / target.shape[0]


def r1(outputs: Tensor, inputs: Tensor, length: int) -> Tensor:
    """R1 penalty ``mean_n |d sum(D) / d x_n|^2 * T / 6`` (``compute_grad2`` with ``ns = T``)."""
    (grad,) = torch.autograd.grad(outputs.sum(), inputs, create_graph=True)
    return (grad.pow(2).flatten(1).sum(1) * (length / 6.0)).mean()


def discriminator_real_terms(real: DOut, labels: Tensor, kind: str) -> dict[str, Tensor]:
    """Discriminator terms on real frames with their actions (and wrong ones)."""
    single = dis_adv(real.single, True, kind)
    if real.single_patch is not None:
        single = single + dis_adv(real.single_patch, True, kind)
    neg = real.neg_action
    if neg is None:
        raise ValueError("the discriminator's real pass needs wrong actions (neg_actions)")
    return {
        "d_real_action": dis_adv(real.action, True, kind),
        "d_wrong_action": dis_adv(neg, False, kind),
        "d_action_recon": F.cross_entropy(real.action_recon, labels),
        "d_real_single_frame": single,
        "d_real_temporal": _mean([dis_adv(p, True, kind) for p in real.temporal], single),
    }


def discriminator_fake_terms(fake: DOut, z: Tensor, kind: str) -> dict[str, Tensor]:
    """Discriminator terms on generated frames (and the noise reconstruction)."""
    single = dis_adv(fake.single, False, kind)
    if fake.single_patch is not None:
        single = single + dis_adv(fake.single_patch, False, kind)
    return {
        "d_fake_action": dis_adv(fake.action, False, kind),
        "d_fake_single_frame": single,
        "d_fake_temporal": _mean([dis_adv(p, False, kind) for p in fake.temporal], single),
        "d_z_recon": F.mse_loss(fake.z_recon, z),
    }


def r1_terms(real: DOut, inputs: Tensor, length: int) -> tuple[Tensor, Tensor]:
    """``(frame/action/info R1, temporal R1)`` on the real frames ``inputs``."""
    reg = 0.33 * r1(real.action, inputs, length)
    reg = reg + 0.33 * r1(real.single, inputs, length)
    reg = reg + 0.33 * r1(real.action_recon, inputs, length)
    temporal = [r1(p, inputs, length) for p in real.temporal]
    return reg, _mean(temporal, reg)
