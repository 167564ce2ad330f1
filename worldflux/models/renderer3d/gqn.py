"""The Generative Query Network's parts (Eslami et al., Science 2018).

Architecture facts from iShohei220/torch-gqn @ c0156c7 (the "pool" representation network and
the ConvLSTM inference and generation cores, optionally shared across the ``L`` steps); parameter
and buffer names follow its state-dict layout so its weights map one to one
(:mod:`worldflux.models.renderer3d.weights`).

- :class:`GQNRepresentation`: per view, a residual CNN on the image with the viewpoint broadcast
  in the middle, averaged over space to a ``repr_dim`` vector; the scene representation is the
  sum over views (as in the paper).
- :class:`GQNRenderer`: the DRAW-like generator: ``L`` steps of a ConvLSTM generation core at a
  quarter of the image resolution writing into a full-resolution canvas ``u``; training maximises
  the ELBO with a ConvLSTM inference core; the pixel standard deviation is annealed.

Axis legend: ``B`` scenes, ``V`` views, ``Q`` query views, ``C`` core channels, ``K`` latent
channels, ``H, W`` image size, ``h, w = H / 4, W / 4`` the core's resolution.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Normal, kl_divergence

from worldflux.errors import ShapeError
from worldflux.models.renderer3d.rays import POSE_DIM


def check_gqn_image(image_size: tuple[int, int]) -> None:
    """GQN needs square images whose side is a multiple of 8 (the representation's strides)."""
    h, w = image_size
    if h != w or h % 8:
        raise ShapeError(
            f"GQN takes square images whose side is a multiple of 8 (its core runs at a quarter "
            f"of the resolution), got {h}x{w}"
        )


class ConvLSTMCell(nn.Module):
    """A convolutional LSTM cell with one convolution per gate over ``[hidden, input]``."""

    def __init__(self, in_channels: int, channels: int, kernel: int) -> None:
        super().__init__()
        cin = in_channels + channels
        pad = kernel // 2
        self.forget = nn.Conv2d(cin, channels, kernel, padding=pad)
        self.input = nn.Conv2d(cin, channels, kernel, padding=pad)
        self.output = nn.Conv2d(cin, channels, kernel, padding=pad)
        self.state = nn.Conv2d(cin, channels, kernel, padding=pad)

    def forward(self, x: Tensor, cell: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """The next ``(cell, hidden)``, both ``(B, C, h, w)``."""
        xh = torch.cat([hidden, x], 1)
        cell = torch.sigmoid(self.forget(xh)) * cell + torch.sigmoid(self.input(xh)) * torch.tanh(
            self.state(xh)
        )
        return cell, torch.sigmoid(self.output(xh)) * torch.tanh(cell)


class GQNRepresentation(nn.Module):
    """The "pool" representation network; per-view ``(B, V, repr_dim)``, pooled by sum.

    Args:
        image_size: ``(H, W)``, square, side a multiple of 8.
        latent_dim: the representation size (256 in the paper).
        pool: ``"sum"`` over views (the paper's).
    """

    def __init__(
        self, image_size: tuple[int, int], latent_dim: int, pool: str = "sum", **_: Any
    ) -> None:
        super().__init__()
        check_gqn_image(image_size)
        if pool != "sum":
            raise ShapeError(f"GQNRepresentation pools views by 'sum', got pool={pool!r}")
        r, half, v = latent_dim, latent_dim // 2, POSE_DIM
        self.conv1 = nn.Conv2d(3, r, 2, stride=2)
        self.conv2 = nn.Conv2d(r, r, 2, stride=2)
        self.conv3 = nn.Conv2d(r, half, 3, padding=1)
        self.conv4 = nn.Conv2d(half, r, 2, stride=2)
        self.conv5 = nn.Conv2d(r + v, r, 3, padding=1)
        self.conv6 = nn.Conv2d(r + v, half, 3, padding=1)
        self.conv7 = nn.Conv2d(half, r, 3, padding=1)
        self.conv8 = nn.Conv2d(r, r, 1)

    def forward(self, images: Tensor, poses: Tensor) -> Tensor:
        """Per-view representations ``(B, V, repr_dim)``."""
        b, v = images.shape[:2]
        x, p = images.flatten(0, 1), poses.flatten(0, 1)
        skip = F.relu(self.conv1(x))
        r = F.relu(self.conv4(F.relu(self.conv3(skip)))) + F.relu(self.conv2(skip))
        skip = torch.cat([r, p[:, :, None, None].expand(-1, -1, *r.shape[2:])], 1)
        r = F.relu(self.conv7(F.relu(self.conv6(skip)))) + F.relu(self.conv5(skip))
        r = F.relu(self.conv8(r)).mean((2, 3))  # = AvgPool2d over the whole map
        return r.unflatten(0, (b, v))

    def pool(self, per_view: Tensor) -> Tensor:
        """The scene representation ``(B, repr_dim)``: the sum over views."""
        return per_view.sum(1)


class InferenceCore(nn.Module):
    """The posterior ConvLSTM: query image, viewpoint, representation, generator state."""

    def __init__(self, repr_dim: int, channels: int, core: int, kernel: int = 5) -> None:
        super().__init__()
        self.downsample_x = nn.Conv2d(3, 3, 4, stride=4, bias=False)
        self.upsample_v = nn.ConvTranspose2d(POSE_DIM, POSE_DIM, core, stride=core, bias=False)
        self.upsample_r = nn.ConvTranspose2d(repr_dim, repr_dim, core, stride=core, bias=False)
        self.downsample_u = nn.Conv2d(channels, channels, 4, stride=4, bias=False)
        self.core = ConvLSTMCell(3 + POSE_DIM + repr_dim + 2 * channels, channels, kernel)

    def forward(
        self, x: Tensor, v: Tensor, r: Tensor, c: Tensor, h: Tensor, h_g: Tensor, u: Tensor
    ) -> tuple[Tensor, Tensor]:
        inp = torch.cat(
            [
                self.downsample_x(x),
                self.upsample_v(v[..., None, None]),
                self.upsample_r(r[..., None, None]),
                h_g,
                self.downsample_u(u),
            ],
            1,
        )
        return self.core(inp, c, h)


class GenerationCore(nn.Module):
    """The generator ConvLSTM; writes its upsampled hidden state into the canvas ``u``."""

    def __init__(
        self, repr_dim: int, channels: int, z_channels: int, core: int, kernel: int = 5
    ) -> None:
        super().__init__()
        self.upsample_v = nn.ConvTranspose2d(POSE_DIM, POSE_DIM, core, stride=core, bias=False)
        self.upsample_r = nn.ConvTranspose2d(repr_dim, repr_dim, core, stride=core, bias=False)
        self.core = ConvLSTMCell(POSE_DIM + repr_dim + z_channels, channels, kernel)
        self.upsample_h = nn.ConvTranspose2d(channels, channels, 4, stride=4, bias=False)

    def forward(
        self, v: Tensor, r: Tensor, c: Tensor, h: Tensor, u: Tensor, z: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        inp = torch.cat(
            [self.upsample_v(v[..., None, None]), self.upsample_r(r[..., None, None]), z], 1
        )
        c, h = self.core(inp, c, h)
        return c, h, self.upsample_h(h) + u


class GQNRenderer(nn.Module):
    """GQN's generator and inference network with the ELBO loss.

    Args:
        image_size: ``(H, W)``; the cores run at ``H / 4``.
        latent_dim: the representation size.
        channels: ConvLSTM channels (128).
        z_channels: latent channels per step (3).
        steps: generation steps ``L`` (12).
        shared_core: one core for all steps (else one per step).
        sigma_start, sigma_end, sigma_anneal_steps: pixel standard deviation, annealed linearly.
    """

    def __init__(
        self,
        image_size: tuple[int, int],
        latent_dim: int,
        channels: int,
        z_channels: int,
        steps: int,
        shared_core: bool,
        sigma_start: float,
        sigma_end: float,
        sigma_anneal_steps: int,
        **_: Any,
    ) -> None:
        super().__init__()
        check_gqn_image(image_size)
        core = image_size[0] // 4
        self.steps, self.shared_core, self.channels, self.core_size = (
            steps,
            shared_core,
            channels,
            core,
        )
        self.sigma = (sigma_start, sigma_end, sigma_anneal_steps)

        def inference() -> nn.Module:
            return InferenceCore(latent_dim, channels, core)

        def generation() -> nn.Module:
            return GenerationCore(latent_dim, channels, z_channels, core)

        if shared_core:
            self.inference_core: nn.Module = inference()
            self.generation_core: nn.Module = generation()
        else:
            self.inference_core = nn.ModuleList(inference() for _ in range(steps))
            self.generation_core = nn.ModuleList(generation() for _ in range(steps))
        self.eta_pi = nn.Conv2d(channels, 2 * z_channels, 5, padding=2)
        self.eta_g = nn.Conv2d(channels, 3, 1)
        self.eta_e = nn.Conv2d(channels, 2 * z_channels, 5, padding=2)

    def _core(self, cores: nn.Module, step: int) -> nn.Module:
        return cores if self.shared_core else cores[step]  # type: ignore[index]

    def pixel_sigma(self, step: int) -> float:
        """``max(end + (start - end) (1 - step / n), end)``: the annealed pixel std."""
        start, end, n = self.sigma
        return end if n <= 0 else max(end + (start - end) * (1 - step / n), end)

    def _zeros(self, x: Tensor, size: int) -> Tensor:
        return x.new_zeros(x.shape[0], self.channels, size, size)

    @staticmethod
    def _normal(stats: Tensor) -> Normal:
        mu, logvar = stats.chunk(2, 1)
        return Normal(mu, torch.exp(0.5 * logvar))

    def elbo_terms(self, r: Tensor, images: Tensor, poses: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """KL per step summed ``(N,)``, the final canvas mean ``(N, 3, H, W)`` and ``u``."""
        c_g, h_g = self._zeros(r, self.core_size), self._zeros(r, self.core_size)
        c_e, h_e = self._zeros(r, self.core_size), self._zeros(r, self.core_size)
        u = self._zeros(r, 4 * self.core_size)
        kl = r.new_zeros(r.shape[0])
        for step in range(self.steps):
            prior = self._normal(self.eta_pi(h_g))
            c_e, h_e = self._core(self.inference_core, step)(images, poses, r, c_e, h_e, h_g, u)
            post = self._normal(self.eta_e(h_e))
            z = post.rsample()
            c_g, h_g, u = self._core(self.generation_core, step)(poses, r, c_g, h_g, u, z)
            kl = kl + kl_divergence(post, prior).sum((1, 2, 3))
        return kl, self.eta_g(u), u

    def loss(
        self, z: Tensor, images: Tensor, poses: Tensor, step: int
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The negative ELBO per query image (summed over pixels, averaged over the batch).

        Args:
            z: scene representations ``(B, repr_dim)``.
            images: query views ``(B, Q, 3, H, W)`` in ``[0, 1]``.
            poses: their poses ``(B, Q, 7)``.
            step: the update counter that anneals the pixel standard deviation.
        """
        q = images.shape[1]
        x, v = images.flatten(0, 1), poses.flatten(0, 1)
        kl, mean, _ = self.elbo_terms(z.repeat_interleave(q, 0), x, v)
        nll = -Normal(mean, self.pixel_sigma(step)).log_prob(x).sum((1, 2, 3))
        return (nll + kl).mean(), {"nll": nll.mean(), "kl": kl.mean()}

    def render(self, z: Tensor, poses: Tensor, height: int, width: int) -> Tensor:
        """Prior samples' means ``(B, Q, 3, H, W)`` in ``[0, 1]`` of scenes from poses ``(B, Q, 7)``."""
        if (height, width) != (4 * self.core_size,) * 2:
            raise ShapeError(
                f"this GQN renders {4 * self.core_size}x{4 * self.core_size} images, asked for "
                f"{height}x{width}"
            )
        b, q = poses.shape[:2]
        r, v = z.repeat_interleave(q, 0), poses.flatten(0, 1)
        c_g, h_g = self._zeros(r, self.core_size), self._zeros(r, self.core_size)
        u = self._zeros(r, height)
        for step in range(self.steps):
            zs = self._normal(self.eta_pi(h_g)).sample()
            c_g, h_g, u = self._core(self.generation_core, step)(v, r, c_g, h_g, u, zs)
        return self.eta_g(u).clamp(0, 1).unflatten(0, (b, q))
