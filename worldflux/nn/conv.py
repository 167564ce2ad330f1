"""Image blocks: 'same'-padded convolutions, fused upsampling convolutions, conv stacks, shifts.

The convolutions use DreamerV3's initialisation (:func:`worldflux.nn.layers.init_weight_`) and
XLA's ``SAME`` padding rule for strided convolutions, as danijar/dreamerv3 @ e3f0224 (JAX) does;
:class:`ShiftAug` is the DrQ-v2 random shift that TD-MPC2 applies to pixels.

Axis legend: ``N`` batch, ``C`` channels, ``H, W`` height and width.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldflux.errors import ConfigError, ShapeError
from worldflux.nn.layers import NormAct, init_weight_


class ChannelNormAct(nn.Module):
    """Norm over the channels of ``(N, C, H, W)`` maps, then activation (an NHWC norm)."""

    def __init__(self, kind: str, channels: int, act: str) -> None:
        super().__init__()
        self.normact = NormAct(kind, channels, act)

    def forward(self, x: Tensor) -> Tensor:
        # The permuted view of a channels-last tensor is contiguous, so this costs no copy.
        return self.normact(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Conv2d(nn.Conv2d):
    """'Same'-padded convolution with DreamerV3's initialisation.

    With ``stride > 1`` the padding follows XLA's ``SAME`` rule (the extra row/column of an
    even total padding goes to the bottom/right).
    """

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int, outscale: float = 1.0, stride: int = 1
    ) -> None:
        self.outscale = outscale
        super().__init__(in_ch, out_ch, kernel, stride, padding=kernel // 2 if stride == 1 else 0)

    def forward(self, x: Tensor) -> Tensor:
        if self.stride[0] == 1:
            return super().forward(x)
        pads = []
        for size, k, s in zip(x.shape[:1:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))

    def reset_parameters(self) -> None:
        k = self.kernel_size[0] * self.kernel_size[1]
        init_weight_(self.weight, self.in_channels * k, self.outscale)
        if self.bias is not None:
            nn.init.zeros_(self.bias)


class UpConv2d(Conv2d):
    """Nearest 2x upsampling followed by a 'same' convolution, fused.

    Convolving the 2x nearest-upsampled map with a ``K x K`` kernel equals, for each of the four
    output phases, a small convolution of the *low-resolution* map with the kernel's taps summed
    per input pixel. The layer keeps the ``K x K`` weight (same parameters, same output) and
    evaluates it as one ``(4 * C_out)``-channel convolution at low resolution followed by a
    pixel shuffle, which needs about a third of the multiply-adds of upsample-then-convolve.
    """

    fold: Tensor

    def __init__(self, in_ch: int, out_ch: int, kernel: int, outscale: float = 1.0) -> None:
        super().__init__(in_ch, out_ch, kernel, outscale)
        if kernel % 2 == 0:
            raise ConfigError(f"UpConv2d needs an odd kernel, got {kernel}")
        pad = kernel // 2
        # Phase a (output row 2i + a) reads upsampled rows 2i + a + d, d in [-pad, pad], i.e.
        # low-res rows i + floor((a + d) / 2). Gather those offsets into a small kernel.
        lo = (0 - pad) // 2
        hi = (1 + pad) // 2
        self.small = hi - lo + 1
        self.small_pad = -lo
        fold = torch.zeros(2, self.small, kernel)
        for a in range(2):
            for d in range(-pad, pad + 1):
                fold[a, (a + d) // 2 - lo, d + pad] = 1.0
        self.register_buffer("fold", fold, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.pixel_shuffle(self.phases(x), 2)

    def phases(self, x: Tensor) -> Tensor:
        """The output before the pixel shuffle: ``(N, 4 * C_out, H, W)``, phase-minor channels."""
        w = self.weight  # O I K K
        out_ch = w.shape[0]
        # weight for phases (a, b): sum of taps landing on each low-res offset
        small = torch.einsum("ask,btl,oikl->oabist", self.fold, self.fold, w)
        small = small.reshape(out_ch * 4, w.shape[1], self.small, self.small)
        bias = None if self.bias is None else self.bias.repeat_interleave(4)
        return F.conv2d(x, small, bias, padding=self.small_pad)


def conv_stack(
    in_ch: int,
    channels: Sequence[int],
    kernel: int,
    norm: str = "rms",
    act: str = "silu",
    strided: bool = False,
) -> nn.Sequential:
    """A downsampling encoder: per stage, a conv to ``channels[i]`` halving the resolution, then
    a channel norm and activation.

    The halving is a 2x2 max-pool after a 'same' conv, or with ``strided`` a stride-2 conv (same
    parameters, a quarter of the multiply-adds). Module indices follow that order, so state-dict
    names are ``<i>.weight`` of each conv.
    """
    blocks: list[nn.Module] = []
    for out_ch in channels:
        if strided:
            blocks.append(Conv2d(in_ch, out_ch, kernel, stride=2))
        else:
            blocks += [Conv2d(in_ch, out_ch, kernel), nn.MaxPool2d(2)]
        blocks.append(ChannelNormAct(norm, out_ch, act))
        in_ch = out_ch
    return nn.Sequential(*blocks)


def upconv_stack(
    in_ch: int, channels: Sequence[int], kernel: int, norm: str = "rms", act: str = "silu"
) -> nn.Sequential:
    """An upsampling decoder: per stage, a fused 2x-upsampling conv to ``channels[i]``, then a
    channel norm and activation (pairs ``2i``, ``2i + 1`` in the state dict)."""
    blocks: list[nn.Module] = []
    for out_ch in channels:
        blocks += [UpConv2d(in_ch, out_ch, kernel), ChannelNormAct(norm, out_ch, act)]
        in_ch = out_ch
    return nn.Sequential(*blocks)


class ShiftAug(nn.Module):
    """Random shift of up to ``pad`` pixels (DrQ-v2), via replicate padding and grid sampling."""

    def __init__(self, pad: int = 3) -> None:
        super().__init__()
        self.pad = int(pad)

    def forward(self, x: Tensor) -> Tensor:
        """``x (N, C, H, W)`` float with ``H == W`` -> shifted ``(N, C, H, W)``."""
        n, _, h, w = x.shape
        if h != w:
            raise ShapeError(f"ShiftAug needs square images, got {h}x{w}")
        x = F.pad(x, (self.pad,) * 4, mode="replicate")
        eps = 1.0 / (h + 2 * self.pad)
        grid_1d = torch.linspace(
            -1.0 + eps, 1.0 - eps, h + 2 * self.pad, device=x.device, dtype=x.dtype
        )[:h]
        grid_1d = grid_1d.unsqueeze(0).expand(h, h).unsqueeze(2)
        base = (
            torch.cat([grid_1d, grid_1d.transpose(1, 0)], dim=2).unsqueeze(0).expand(n, -1, -1, -1)
        )
        shift = torch.randint(0, 2 * self.pad + 1, (n, 1, 1, 2), device=x.device).to(x.dtype)
        grid = base + shift * (2.0 / (h + 2 * self.pad))
        return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)
