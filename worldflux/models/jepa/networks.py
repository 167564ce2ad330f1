"""PLDM's networks: the IMPALA encoder, the GRU predictor and the inverse-dynamics head.

Architecture facts from vladisai/PLDM @ cbaf674 (``pldm/models/encoders/impala.py``,
``pldm/models/predictors.py`` ``RNNPredictorV2``, ``pldm/models/misc.py`` ``MLP``): three
conv + max-pool stages of (16, 32, 32) channels with two residual blocks each, a final ReLU, one
linear layer to the embedding and a LayerNorm; a one-layer GRU whose hidden state is the
embedding and whose input is the action; a ReLU MLP from two embeddings to the action. Torch's
default initialisation everywhere, as in the reference.

Axis legend: ``B`` batch, ``C, H, W`` image channels, height, width, ``Z`` embedding size,
``A`` action size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldflux.errors import ShapeError


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with a skip connection, ReLU after the sum."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))) + x)


class ImpalaStage(nn.Module):
    """A 3x3 convolution, a stride-2 max-pool (which halves the side, rounding up) and blocks."""

    def __init__(self, in_channels: int, channels: int, num_blocks: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.blocks = nn.Sequential(*[ResidualBlock(channels) for _ in range(num_blocks)])

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(self.pool(self.conv(x)))


class ImpalaEncoder(nn.Module):
    """IMPALA residual encoder to a LayerNormed embedding ``(B, Z)``.

    Args:
        obs_shape: ``(C, H, W)`` of one observation (runtime; the flattened conv output size
            follows from it: 32 x 9 x 9 = 2592 for 65 x 65 images).
        latent_dim: embedding size ``Z`` (runtime, from the family config).
        channels: channels of the stages.
        num_blocks: residual blocks per stage.
        final_norm: end with a LayerNorm (PLDM ``final_ln``; the predictor shares it).
    """

    def __init__(
        self,
        obs_shape: Sequence[int],
        latent_dim: int,
        channels: Sequence[int] = (16, 32, 32),
        num_blocks: int = 2,
        final_norm: bool = True,
    ) -> None:
        super().__init__()
        if len(obs_shape) != 3:
            raise ShapeError(f"ImpalaEncoder needs obs_shape (C, H, W), got {list(obs_shape)}")
        c, h, w = (int(s) for s in obs_shape)
        self.obs_shape = (c, h, w)
        ins = [c, *channels[:-1]]
        self.stages = nn.Sequential(*[ImpalaStage(i, o, num_blocks) for i, o in zip(ins, channels)])
        for _ in channels:
            h, w = (h + 1) // 2, (w + 1) // 2
        self.flat_dim = int(channels[-1]) * h * w
        self.proj = nn.Linear(self.flat_dim, latent_dim)
        self.norm = nn.LayerNorm(latent_dim) if final_norm else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """Embeddings ``(B, Z)`` of float images ``(B, C, H, W)``."""
        if tuple(x.shape[1:]) != self.obs_shape:
            raise ShapeError(
                f"ImpalaEncoder expects images (B, {', '.join(map(str, self.obs_shape))}), got "
                f"{tuple(x.shape)}"
            )
        return self.norm(self.proj(F.relu(self.stages(x)).flatten(1)))


class GRUPredictor(nn.Module):
    """One-layer GRU stepping the embedding: the hidden state is ``z``, the input the action.

    Args:
        action_dim: action size ``A`` (runtime).
        latent_dim: embedding size ``Z`` (runtime).
        final_norm: a LayerNorm of its own on the output (PLDM ``predictor_ln`` without
            ``tie_backbone_ln``); with the family's ``tie_norm`` the encoder's is used instead.
    """

    def __init__(self, action_dim: int, latent_dim: int, final_norm: bool = False) -> None:
        super().__init__()
        self.rnn = nn.GRU(input_size=action_dim, hidden_size=latent_dim, num_layers=1)
        self.norm = nn.LayerNorm(latent_dim) if final_norm else nn.Identity()

    def forward(self, z: Tensor, action: Tensor) -> Tensor:
        """Next embedding ``(B, Z)`` from ``z (B, Z)`` and ``action (B, A)`` (before a tied norm)."""
        out, _ = self.rnn(action[None], z[None].contiguous())
        return self.norm(out[0])


class InverseDynamics(nn.Module):
    """ReLU MLP predicting the action between two embeddings (PLDM's IDM objective head).

    Args:
        latent_dim: embedding size ``Z`` (runtime).
        action_dim: action size ``A`` (runtime).
        hidden: hidden widths (PLDM wall: ``[512]``).
    """

    def __init__(self, latent_dim: int, action_dim: int, hidden: Sequence[int] = (512,)) -> None:
        super().__init__()
        dims = [2 * latent_dim, *hidden]
        layers: list[nn.Module] = []
        for i, o in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(i, o), nn.ReLU()]
        self.mlp = nn.Sequential(*layers, nn.Linear(dims[-1], action_dim))

    def forward(self, z: Tensor, z_next: Tensor) -> Tensor:
        """Predicted action ``(..., A)`` from ``z`` and ``z_next`` ``(..., Z)``."""
        return self.mlp(torch.cat([z, z_next], -1))
