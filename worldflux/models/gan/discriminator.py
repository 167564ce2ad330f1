"""GameGAN discriminator (nv-tlabs/GameGAN_code @ 1195c39, ``discriminator.py``).

Four parts share one per-frame feature extractor: a single-frame discriminator (is this a
plausible frame?), an action-conditioned discriminator on pairs of consecutive frame features
(does this transition follow this action? also fed wrong actions), an info head that reconstructs
the action and the noise ``z`` from the transition, and a temporal discriminator of 3-D
convolutions over the whole sequence of frame features, with a logit at each temporal scale.

Axis legend: ``T`` sequence length, ``B`` batch, ``N = (T - 1) B`` frames time-major,
``C`` channels, ``S`` image side, ``F`` feature channels (``16 nfilterD``), ``A`` actions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldflux.models.gan.layers import DBlock, SNConv2d, SNLinear, orthogonal_init, spectral


class SingleFrameD(nn.Module):
    """BigGAN discriminator body (skinny, no attention): frame ``(N, C, S, S)`` to logit and
    ``(N, F, 4, 4)`` features."""

    def __init__(self, ch: int, in_channels: int, image_size: int) -> None:
        super().__init__()
        n_down = round(math.log2(image_size / 4))
        outs = [ch * 2**i for i in range(n_down)] + [16 * ch]
        ins = [in_channels, *outs[:-1]]
        self.blocks = nn.ModuleList(
            nn.ModuleList([DBlock(ins[i], outs[i], preactivation=i > 0, downsample=i < n_down)])
            for i in range(len(outs))
        )
        self.linear = SNLinear(outs[-1], 1)
        orthogonal_init(self)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = x
        for blocklist in self.blocks:
            for block in blocklist:
                h = block(h)
        h = F.relu(h)
        return self.linear(h.sum([2, 3])), h


def simple_frame_encoder(expand: int, in_channels: int, image_size: int) -> nn.Sequential:
    """Strided spectral-norm convs of the ``simple_blocks`` discriminator, down to 3x3."""
    sides, side = [], (image_size - 4) // 2 + 1
    sides.append(side)
    while side > 3:
        side = (side - 3) // 2 + 1
        sides.append(side)
    chans = [expand * min(2**i, 4) for i in range(len(sides) - 1)] + [4 * expand]
    layers: list[nn.Module] = []
    cin = in_channels
    for i, cout in enumerate(chans):
        k = 4 if i == 0 else 3
        layers += [spectral(nn.Conv2d(cin, cout, k, 2)), nn.LeakyReLU(0.2)]
        cin = cout
    return nn.Sequential(*layers)


def temporal_levels(
    in_dim: int, dim: int, window: int, simple: bool
) -> tuple[nn.ModuleList, nn.ModuleList]:
    """Temporal extractor stages and their logit heads (``choose_netD_temporal``, ``sn`` mode)."""
    sn3 = lambda cin, cout, k, s=(1, 1, 1): spectral(nn.Conv3d(cin, cout, k, s))  # noqa: E731
    act = nn.LeakyReLU(0.2)
    extractors, heads = nn.ModuleList(), nn.ModuleList()
    if simple:
        extractors.append(
            nn.Sequential(
                sn3(in_dim, dim, (2, 2, 2)), act, sn3(dim, 2 * dim, (3, 2, 2), (2, 1, 1)), act
            )
        )
        heads.append(nn.Sequential(sn3(2 * dim, 1, (2, 1, 1), (2, 1, 1))))
        if window > 6:
            extractors.append(nn.Sequential(sn3(2 * dim, 4 * dim, (3, 1, 1), (2, 1, 1)), act))
            heads.append(nn.Sequential(sn3(4 * dim, 1, (2, 1, 1))))
        if window > 18:
            extractors.append(nn.Sequential(sn3(4 * dim, 8 * dim, (3, 1, 1), (2, 1, 1)), act))
            heads.append(nn.Sequential(sn3(8 * dim, 1, (3, 1, 1))))
        return extractors, heads
    extractors.append(
        nn.Sequential(
            sn3(in_dim, dim, (2, 2, 2)), act, sn3(dim, 2 * dim, (3, 3, 3), (2, 1, 1)), act
        )
    )
    heads.append(nn.Sequential(sn3(2 * dim, 1, (2, 1, 1))))
    if window >= 12:
        extractors.append(nn.Sequential(sn3(2 * dim, 4 * dim, (3, 1, 1)), act))
        heads.append(nn.Sequential(sn3(4 * dim, 1, (3, 1, 1))))
    if window >= 18:
        extractors.append(nn.Sequential(sn3(4 * dim, 8 * dim, (3, 1, 1), (2, 1, 1)), act))
        short = window in (18, 28)
        heads.append(
            nn.Sequential(
                sn3(
                    8 * dim, 1, (2, 1, 1) if short else (4, 1, 1), (1, 1, 1) if short else (2, 1, 1)
                )
            )
        )
    return extractors, heads


@dataclass
class DOut:
    """Discriminator outputs (``N = (T - 1) B`` rows, time-major)."""

    features: Tensor  # (N, F, h, w) frame features of the judged frames
    single: Tensor  # (N, 1) single-frame logits
    single_patch: Tensor | None  # (N, 1, 3, 3) patch logits (simple blocks only)
    action: Tensor  # (N, 1) action-conditioned logits
    neg_action: Tensor | None  # (N, 1) logits for the wrong actions
    action_recon: Tensor  # (N, A) action logits
    z_recon: Tensor  # (N, Z) reconstructed noise
    temporal: list[Tensor]  # per level (B, L_k)


class Discriminator(nn.Module):
    """Single-frame, action-conditioned, info and temporal discriminators."""

    def __init__(
        self,
        image_size: int,
        in_channels: int,
        action_dim: int,
        z_dim: int,
        nfilter: int,
        nfilter_temporal: int,
        temporal_window: int,
        simple_blocks: bool,
        transition_dim: int = 256,
    ) -> None:
        super().__init__()
        self.simple = simple_blocks
        self.action_dim, self.z_dim, self.window = action_dim, z_dim, temporal_window
        feat = 16 * nfilter
        if simple_blocks:
            expand = 4 * nfilter
            self.ds = simple_frame_encoder(expand, in_channels, image_size)
            self.single_frame_discriminator_patch = nn.Sequential(
                spectral(nn.Conv2d(feat, feat, 2, 1, 1)),
                nn.LeakyReLU(0.2),
                spectral(nn.Conv2d(feat, 1, 2, 1)),
            )
            self.single_frame_discriminator_all = nn.Sequential(
                spectral(nn.Conv2d(feat, feat, 2, 1)),
                nn.LeakyReLU(0.2),
                spectral(nn.Conv2d(feat, 1, 2, 1)),
            )
        else:
            self.ds = SingleFrameD(nfilter, in_channels, image_size)
        self.conv3d, self.conv3d_final = temporal_levels(
            feat, nfilter_temporal, temporal_window, simple_blocks
        )
        f_size = 3 if simple_blocks else 4
        self.to_transition_feature = nn.Sequential(
            SNConv2d(2 * feat, transition_dim, f_size, padding=0), nn.LeakyReLU(0.2), nn.Flatten()
        )
        self.action_to_feat = nn.Linear(action_dim, transition_dim)
        d = 2 * transition_dim
        self.action_discriminator = nn.Sequential(SNLinear(d, d), nn.LeakyReLU(0.2), SNLinear(d, 1))
        self.reconstruct_action_z = nn.Sequential(nn.Linear(transition_dim, action_dim + z_dim))

    def used_levels(self) -> int:
        """Temporal levels the forward runs (the reference's ``>= 12`` / ``>= 18`` rule)."""
        return min(len(self.conv3d), 1 + (self.window >= 12) + (self.window >= 18))

    def forward(
        self,
        images: Tensor,
        actions: Tensor,
        states: Tensor,
        warm_up: int,
        neg_actions: Tensor | None = None,
    ) -> DOut:
        """Judge ``images (N, C, S, S)`` (frames 1..T-1) in the context of ``states (T, B, ...)``.

        Args:
            images: judged frames, time-major; generated or real frames ``1..T-1``.
            actions: ``(T - 1, B, A)`` the action taken at frames ``0..T-2``.
            states: ``(T, B, C, S, S)`` ground-truth frames (the first ``warm_up`` are context).
            warm_up: ground-truth frames fed to the generator (0 counts as 1: the first frame).
            neg_actions: ``(T - 1, B, A)`` wrong actions for the action discriminator, or None.
        """
        w = max(warm_up, 1)
        b = states.shape[1]
        gt = states[:w].flatten(0, 1)
        patch = None
        if self.simple:
            gt_f, gen_f = self.ds(gt), self.ds(images)
            feats = torch.cat([gt_f, gen_f], 0)
            patch = self.single_frame_discriminator_patch(gen_f)
            single = self.single_frame_discriminator_all(gen_f).flatten(1)
        else:
            single, feats = self.ds(torch.cat([gt, images], 0))
            single = single[w * b :]
        frame_f = feats[w * b :]
        # the frame before each judged one: ground truth during warm-up, then judged frames
        prev_f = torch.cat([feats[: w * b], feats[(2 * w - 1) * b : -b]], 0)
        trans = self.to_transition_feature(torch.cat([prev_f, frame_f], 1))
        acts = actions.flatten(0, 1)
        action = self.action_discriminator(torch.cat([self.action_to_feat(acts), trans], 1))
        neg = None
        if neg_actions is not None:
            neg_feat = self.action_to_feat(neg_actions.flatten(0, 1))
            neg = self.action_discriminator(torch.cat([neg_feat, trans], 1))
        recon = self.reconstruct_action_z(trans)
        temporal: list[Tensor] = []
        if states.shape[0] > 4:
            seq = torch.cat([feats[: w * b], feats[(2 * w - 1) * b :]], 0)
            h = seq.view(-1, b, *seq.shape[1:]).permute(1, 2, 0, 3, 4)  # (B, F, T, h, w)
            for level in range(self.used_levels()):
                h = self.conv3d[level](h)
                temporal.append(self.conv3d_final[level](h).view(b, -1))
        return DOut(
            features=frame_f,
            single=single,
            single_patch=patch,
            action=action,
            neg_action=neg,
            action_recon=recon[:, : self.action_dim],
            z_recon=recon[:, self.action_dim : self.action_dim + self.z_dim],
            temporal=temporal,
        )
