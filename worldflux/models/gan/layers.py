"""GameGAN building blocks: BigGAN-style spectral norm, residual blocks, self-attention, SPADE.

The spectral norm of the BigGAN code (one power iteration per training forward, the left singular
vector kept in a buffer ``u0`` and the estimate in ``sv0``) is what the GameGAN rendering engine,
the single-frame discriminator and the action discriminator use; the simple-block variants use
``torch.nn.utils.spectral_norm`` instead, as the reference does, so both parameterisations and
their buffer names match nv-tlabs/GameGAN_code @ 1195c39.

Axis legend: ``N`` flat batch, ``C`` channels, ``H, W`` height and width.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class BigGANSpectralNorm:
    """Mixin: divide ``weight`` by its largest singular value, estimated by power iteration.

    The estimate starts from a random ``u0`` buffer and is refined by one iteration per forward;
    in training mode ``u0`` and the logged ``sv0`` are updated in place (no gradient flows
    through the estimate's vectors, only through the weight in the final quotient).
    """

    weight: Tensor
    training: bool
    eps: float

    def _init_sn(self, num_outputs: int, eps: float) -> None:
        self.eps = eps
        self.register_buffer("u0", torch.randn(1, num_outputs))  # type: ignore[attr-defined]
        self.register_buffer("sv0", torch.ones(1))  # type: ignore[attr-defined]

    def normalized_weight(self) -> Tensor:
        """``weight / sigma_max(weight)`` with one power-iteration step."""
        w = self.weight.view(self.weight.size(0), -1)
        u0: Tensor = self.u0  # type: ignore[attr-defined]
        with torch.no_grad():
            v = F.normalize(u0 @ w, eps=self.eps)
            u = F.normalize(v @ w.t(), eps=self.eps)
            if self.training:
                u0.copy_(u)
        sigma = torch.squeeze((v @ w.t()) @ u.t())
        if self.training:
            with torch.no_grad():
                self.sv0.copy_(sigma.detach().reshape(1))  # type: ignore[attr-defined]
        return self.weight / sigma


class SNConv2d(nn.Conv2d, BigGANSpectralNorm):
    """2-D convolution with BigGAN spectral norm."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        padding: int = 1,
        bias: bool = True,
        eps: float = 1e-12,
    ) -> None:
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, 1, padding, bias=bias)
        self._init_sn(out_channels, eps)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.normalized_weight(), self.bias, self.stride, self.padding)


class SNLinear(nn.Linear, BigGANSpectralNorm):
    """Linear layer with BigGAN spectral norm."""

    def __init__(self, in_features: int, out_features: int, eps: float = 1e-12) -> None:
        nn.Linear.__init__(self, in_features, out_features)
        self._init_sn(out_features, eps)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.normalized_weight(), self.bias)


def spectral(module: nn.Module) -> nn.Module:
    """``torch.nn.utils.spectral_norm`` (the reference's ``spn``/``SN`` wrapper)."""
    return nn.utils.spectral_norm(module)


def _gain_as_vector(state: dict[str, Tensor], prefix: str, *args: object) -> None:
    """Load hook: a 0-d ``gamma`` (the reference's layout) becomes the (1,) parameter."""
    key = prefix + "gamma"
    if key in state and state[key].dim() == 0:
        state[key] = state[key].reshape(1)


class SelfAttention(nn.Module):
    """SA-GAN non-local block as released in the BigGAN code (2x2-pooled keys and values)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.ch = channels
        self.theta = SNConv2d(channels, channels // 8, 1, padding=0, bias=False)
        self.phi = SNConv2d(channels, channels // 8, 1, padding=0, bias=False)
        self.g = SNConv2d(channels, channels // 2, 1, padding=0, bias=False)
        self.o = SNConv2d(channels // 2, channels, 1, padding=0, bias=False)
        # starts at 0, so the block is the identity until the gain is learnt. Stored with shape
        # (1,) rather than the reference's 0-d scalar because FSDP cannot shard 0-d parameters;
        # a 0-d gain in a loaded state dict (reference layout, older files) is reshaped on load.
        self.gamma = nn.Parameter(torch.zeros(1))
        self._register_load_state_dict_pre_hook(_gain_as_vector)

    def forward(self, x: Tensor, do_norm: bool = True, do_activation: bool = True) -> Tensor:
        n, _, h, w = x.shape
        theta = self.theta(x).view(n, self.ch // 8, h * w)
        phi = F.max_pool2d(self.phi(x), 2).view(n, self.ch // 8, h * w // 4)
        g = F.max_pool2d(self.g(x), 2).view(n, self.ch // 2, h * w // 4)
        beta = F.softmax(theta.transpose(1, 2) @ phi, -1)
        o = self.o((g @ beta.transpose(1, 2)).view(n, self.ch // 2, h, w))
        return self.gamma * o + x


class GBlock(nn.Module):
    """BigGAN generator residual block with instance norm (GameGAN replaces the class BN).

    ``do_norm``/``do_activation`` let the SPADE stage of the disentangling renderer skip the
    first normalisation and activation.
    """

    def __init__(self, in_channels: int, out_channels: int, upsample: int = 2) -> None:
        super().__init__()
        self.upsample = upsample
        self.conv1 = SNConv2d(in_channels, out_channels)
        self.conv2 = SNConv2d(out_channels, out_channels)
        self.learnable_sc = in_channels != out_channels or upsample > 1
        if self.learnable_sc:
            self.conv_sc = SNConv2d(in_channels, out_channels, 1, padding=0)
        self.bn1 = nn.InstanceNorm2d(in_channels)
        self.bn2 = nn.InstanceNorm2d(out_channels)

    def forward(self, x: Tensor, do_norm: bool = True, do_activation: bool = True) -> Tensor:
        h = self.bn1(x) if do_norm else x
        if do_activation:
            h = F.relu(h)
        if self.upsample > 1:
            h = F.interpolate(h, scale_factor=self.upsample)
            x = F.interpolate(x, scale_factor=self.upsample)
        h = self.conv1(h)
        if do_norm:
            h = self.bn2(h)
        h = self.conv2(F.relu(h))
        return h + (self.conv_sc(x) if self.learnable_sc else x)


class SimpleGBlock(nn.Module):
    """Transposed-conv upsampling block of the ``simple_blocks`` renderer (spectral norm)."""

    def __init__(self, in_channels: int, out_channels: int, num_conv: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if num_conv == 2:
            layers += [
                spectral(nn.ConvTranspose2d(in_channels, in_channels, 3, 1)),
                nn.LeakyReLU(0.2),
            ]
        layers.append(spectral(nn.ConvTranspose2d(in_channels, out_channels, 3, 2, 1)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, do_norm: bool = True, do_activation: bool = True) -> Tensor:
        return self.net(F.leaky_relu(x, 0.2) if do_activation else x)


class DBlock(nn.Module):
    """BigGAN discriminator residual block (skinny: hidden width = input width)."""

    def __init__(
        self, in_channels: int, out_channels: int, preactivation: bool, downsample: bool
    ) -> None:
        super().__init__()
        self.preactivation, self.downsample = preactivation, downsample
        self.conv1 = SNConv2d(in_channels, in_channels)
        self.conv2 = SNConv2d(in_channels, out_channels)
        self.learnable_sc = in_channels != out_channels or downsample
        if self.learnable_sc:
            self.conv_sc = SNConv2d(in_channels, out_channels, 1, padding=0)

    def _shortcut(self, x: Tensor) -> Tensor:
        # the order of pooling and 1x1 conv differs with pre-activation, as in BigGAN
        if self.preactivation and self.learnable_sc:
            x = self.conv_sc(x)
        if self.downsample:
            x = F.avg_pool2d(x, 2)
        if not self.preactivation and self.learnable_sc:
            x = self.conv_sc(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(x) if self.preactivation else x
        h = self.conv2(F.relu(self.conv1(h)))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        return h + self._shortcut(x)


class SPADE(nn.Module):
    """Spatially-adaptive normalisation (Park et al. 2019): attribute maps modulate features."""

    def __init__(self, norm_channels: int, label_channels: int, hidden: int = 128) -> None:
        super().__init__()
        self.param_free_norm = nn.InstanceNorm2d(norm_channels, affine=False)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_channels, hidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, norm_channels, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, norm_channels, 3, padding=1)

    def forward(self, x: Tensor, segmap: Tensor) -> Tensor:
        segmap = F.interpolate(segmap, size=x.shape[2:], mode="nearest")
        actv = self.mlp_shared(segmap)
        out = self.param_free_norm(x) * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)
        return F.leaky_relu(out, 0.2)


def orthogonal_init(module: nn.Module, kinds: tuple[type, ...] = (nn.Conv2d, nn.Linear)) -> None:
    """BigGAN's ``ortho`` init of every conv/linear weight below ``module`` (skipped on meta)."""
    for m in module.modules():
        weight = getattr(m, "weight", None)
        real = isinstance(weight, nn.Parameter) and weight.device.type != "meta"
        if isinstance(m, kinds) and real:
            nn.init.orthogonal_(weight)


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Spatial size after a convolution."""
    return (size + 2 * padding - kernel) // stride + 1


Act = Callable[[Tensor], Tensor]
