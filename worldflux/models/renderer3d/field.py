"""The neural scene field world model's parts (Li et al., CoRL 2021).

- :class:`SceneEncoder`: a CNN per view, its features concatenated with the camera pose and
  mapped by an MLP to a per-view latent; the scene state is the mean over views (so any number of
  views can be pooled, and the state does not depend on which cameras were used).
- :class:`NeRFRenderer`: a NeRF MLP conditioned on the scene state (positional encoding of points
  and view directions, density and colour), rendered by stratified coarse sampling followed by
  hierarchical fine sampling along camera rays, trained by MSE on sampled rays.
- :class:`LatentTransition`: the action-conditioned latent dynamics, a residual MLP.

Axis legend: ``B`` scenes, ``V`` views, ``Q`` query views, ``R`` rays, ``S`` samples, ``Z`` scene
state, ``A`` action, ``H, W`` image size.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from worldflux.errors import ShapeError
from worldflux.models.renderer3d import rays as R


class SceneEncoder(nn.Module):
    """Per-view CNN + pose MLP, pooled over views.

    Args:
        image_size: ``(H, W)``; both must be multiples of 16 (four stride-2 convolutions).
        latent_dim: scene state size.
        channels: width of the first convolution (doubled at each of the four layers).
        hidden: width of the MLP on image features and pose.
        pool: ``"mean"`` over views.
    """

    def __init__(
        self,
        image_size: tuple[int, int],
        latent_dim: int,
        channels: int,
        hidden: int,
        pool: str = "mean",
    ) -> None:
        super().__init__()
        h, w = image_size
        if h % 16 or w % 16:
            raise ShapeError(
                f"the field encoder takes images whose sides are multiples of 16 (four stride-2 "
                f"convolutions), got {h}x{w}"
            )
        if pool != "mean":
            raise ShapeError(f"SceneEncoder pools views by 'mean', got pool={pool!r}")
        layers: list[nn.Module] = []
        cin = 3
        for i in range(4):
            layers += [nn.Conv2d(cin, channels * 2**i, 4, stride=2, padding=1), nn.ReLU()]
            cin = channels * 2**i
        self.cnn = nn.Sequential(*layers)
        self.mlp = nn.Sequential(
            nn.Linear(cin * (h // 16) * (w // 16) + R.POSE_DIM, hidden),
            nn.ReLU(),
            nn.Linear(hidden, latent_dim),
        )

    def forward(self, images: Tensor, poses: Tensor) -> Tensor:
        """Per-view latents ``(B, V, Z)`` of images ``(B, V, 3, H, W)`` and poses ``(B, V, 7)``."""
        b, v = images.shape[:2]
        feats = self.cnn(images.flatten(0, 1)).flatten(1)
        return self.mlp(torch.cat([feats, poses.flatten(0, 1)], -1)).unflatten(0, (b, v))

    def pool(self, per_view: Tensor) -> Tensor:
        """The scene state ``(B, Z)``: the mean of the per-view latents ``(B, V, Z)``."""
        return per_view.mean(1)


class ConditionalField(nn.Module):
    """NeRF's MLP with the scene state concatenated to the encoded point."""

    def __init__(
        self, latent_dim: int, width: int, depth: int, skip: int, pos_freqs: int, dir_freqs: int
    ) -> None:
        super().__init__()
        self.pos_freqs, self.dir_freqs, self.skip = pos_freqs, dir_freqs, skip
        point = 3 + 6 * pos_freqs + latent_dim
        self.layers = nn.ModuleList(
            nn.Linear(point if i == 0 else width + (point if i == skip and skip else 0), width)
            for i in range(depth)
        )
        self.sigma = nn.Linear(width, 1)
        self.feature = nn.Linear(width, width)
        self.colour = nn.Sequential(
            nn.Linear(width + 3 + 6 * dir_freqs, width // 2), nn.ReLU(), nn.Linear(width // 2, 3)
        )

    def forward(self, points: Tensor, dirs: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """Colour ``(..., 3)`` in ``[0, 1]`` and density ``(...)`` at ``points``, ``dirs``, ``z``."""
        x = torch.cat([R.positional_encoding(points, self.pos_freqs), z], -1)
        h = x
        for i, layer in enumerate(self.layers):
            if i == self.skip and self.skip:
                h = torch.cat([h, x], -1)
            h = torch.relu(layer(h))
        sigma = self.sigma(h).squeeze(-1)
        d = R.positional_encoding(dirs, self.dir_freqs)
        rgb = torch.sigmoid(self.colour(torch.cat([self.feature(h), d], -1)))
        return rgb, sigma


class NeRFRenderer(nn.Module):
    """Coarse and fine conditional fields with volume rendering along camera rays.

    Args:
        latent_dim: scene state size.
        width, depth, skip, pos_freqs, dir_freqs: the fields' MLP (see :class:`ConditionalField`).
        coarse_samples, fine_samples: stratified and hierarchical samples per ray (``0`` fine
            samples: no fine field).
        near, far, scene_scale, fov: ray bounds, point scaling and camera field of view.
        ray_batch: rays per query view per update.
        render_chunk: rays per forward pass when rendering whole images.
    """

    def __init__(
        self,
        latent_dim: int,
        width: int,
        depth: int,
        skip: int,
        pos_freqs: int,
        dir_freqs: int,
        coarse_samples: int,
        fine_samples: int,
        near: float,
        far: float,
        scene_scale: float,
        fov: float,
        ray_batch: int,
        render_chunk: int,
        **_: Any,
    ) -> None:
        super().__init__()
        args = (latent_dim, width, depth, skip, pos_freqs, dir_freqs)
        self.coarse = ConditionalField(*args)
        self.fine = ConditionalField(*args) if fine_samples > 0 else None
        self.coarse_samples, self.fine_samples = coarse_samples, fine_samples
        self.near, self.far, self.scale, self.fov = near, far, scene_scale, fov
        self.ray_batch, self.render_chunk = ray_batch, render_chunk

    def _field(self, net: ConditionalField, z: Tensor, o: Tensor, d: Tensor, t: Tensor) -> tuple:
        points = (o[..., None, :] + t[..., None] * d[..., None, :]) / self.scale  # (B, R, S, 3)
        dirs = d[..., None, :].expand_as(points)
        zz = z[:, None, None].expand(*points.shape[:-1], z.shape[-1])
        rgb, sigma = net(points, dirs, zz)
        return R.composite(rgb, sigma, t, d)

    def trace(self, z: Tensor, o: Tensor, d: Tensor, perturb: bool) -> dict[str, Tensor]:
        """Colours ``(B, R, 3)`` of rays ``o, d (B, R, 3)`` in scenes ``z (B, Z)``."""
        t = R.stratified_depths(
            o.shape[1],
            o.shape[0],
            self.coarse_samples,
            self.near,
            self.far,
            perturb,
            device=o.device,
        )
        coarse, weights = self._field(self.coarse, z, o, d, t)
        out = {"coarse": coarse, "colour": coarse}
        if self.fine is not None:
            extra = R.importance_depths(t, weights, self.fine_samples, perturb)
            t_all, _ = torch.sort(torch.cat([t, extra], -1), -1)
            out["colour"], _ = self._field(self.fine, z, o, d, t_all)
        return out

    def loss(
        self, z: Tensor, images: Tensor, poses: Tensor, step: int
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Rendering MSE on ``ray_batch`` stratified rays of each query view.

        Args:
            z: scene states ``(B, Z)``.
            images: query views ``(B, Q, 3, H, W)`` in ``[0, 1]``.
            poses: their poses ``(B, Q, 7)``.
            step: the update counter (unused; GQN anneals with it).
        """
        b, q, _, h, w = images.shape
        pix = R.stratified_pixels(b * q, h, w, self.ray_batch, device=images.device)
        o, d = R.pixel_rays(poses.flatten(0, 1), pix, h, w, self.fov)
        target = images.flatten(0, 1).flatten(2).transpose(1, 2)  # (BQ, HW, 3)
        target = target.gather(1, pix[..., None].expand(-1, -1, 3))
        out = self.trace(z.repeat_interleave(q, 0), o, d, perturb=self.training)
        coarse = (out["coarse"] - target).pow(2).mean()
        parts = {"render_coarse": coarse}
        total = coarse
        if self.fine is not None:
            parts["render_fine"] = (out["colour"] - target).pow(2).mean()
            total = total + parts["render_fine"]
        return total, parts

    def render(self, z: Tensor, poses: Tensor, height: int, width: int) -> Tensor:
        """Images ``(B, Q, 3, H, W)`` of scenes ``z (B, Z)`` from poses ``(B, Q, 7)``."""
        b, q = poses.shape[:2]
        zq = z.repeat_interleave(q, 0)
        flat = poses.flatten(0, 1)
        pix = torch.arange(height * width, device=z.device)
        cols = []
        for start in range(0, height * width, self.render_chunk):
            chunk = pix[start : start + self.render_chunk].expand(b * q, -1)
            o, d = R.pixel_rays(flat, chunk, height, width, self.fov)
            cols.append(self.trace(zq, o, d, perturb=False)["colour"])
        img = torch.cat(cols, 1).transpose(1, 2).reshape(b, q, 3, height, width)
        return img


class LatentTransition(nn.Module):
    """``z' = z + MLP([z, a])``: the action-conditioned latent dynamics.

    Args:
        latent_dim: scene state size.
        action_dim: action size.
        hidden: MLP width.
        layers: hidden layers (``0``: a linear map).
    """

    def __init__(self, latent_dim: int, action_dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        dims = [latent_dim + action_dim] + [hidden] * layers + [latent_dim]
        mods: list[nn.Module] = []
        for i in range(len(dims) - 1):
            mods.append(nn.Linear(dims[i], dims[i + 1]))
            if i < len(dims) - 2:
                mods += [nn.LayerNorm(dims[i + 1]), nn.ELU()]
        self.net = nn.Sequential(*mods)

    def forward(self, z: Tensor, action: Tensor) -> Tensor:
        """The next state ``(..., Z)`` from ``z (..., Z)`` and ``action (..., A)``."""
        return z + self.net(torch.cat([z, action], -1))
