"""Camera rays, positional encoding and volume rendering (Mildenhall et al., ECCV 2020).

The camera convention is the one of :mod:`worldflux.envs.scene3d`: a pose is 7 numbers
``(x, y, z, cos yaw, sin yaw, cos pitch, sin pitch)``, ``y`` is up, the camera looks along
``(cos p cos y, sin p, cos p sin y)`` without roll, and the pinhole has the same horizontal and
vertical field of view.

Axis legend: ``B`` batch (scenes x query views), ``R`` rays, ``S`` samples along a ray, ``H, W``
image height and width, ``F`` encoded features.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from worldflux.errors import ShapeError

POSE_DIM = 7


def check_poses(poses: Tensor, views: int | None = None, where: str = "poses") -> None:
    """Refuse poses that are not ``(..., 7)`` finite numbers (or not ``views`` of them)."""
    if poses.shape[-1] != POSE_DIM:
        raise ShapeError(
            f"{where}: a camera pose is {POSE_DIM} numbers (x, y, z, cos yaw, sin yaw, cos pitch, "
            f"sin pitch), got poses of shape {tuple(poses.shape)}"
        )
    if views is not None and poses.shape[-2] != views:
        raise ShapeError(f"{where}: expected {views} poses (one per view), got {poses.shape[-2]}")
    if not bool(torch.isfinite(poses).all()):
        raise ShapeError(f"{where}: camera poses must be finite, got NaN or inf")


def pixel_rays(
    poses: Tensor, pixels: Tensor, height: int, width: int, fov: float
) -> tuple[Tensor, Tensor]:
    """Origins and unit directions ``(B, R, 3)`` through pixel indices ``pixels (B, R)``.

    ``pixels`` index the row-major ``H x W`` image; a pixel's ray passes through its centre.
    """
    cy, sy, cp, sp = poses[:, 3:4], poses[:, 4:5], poses[:, 5:6], poses[:, 6:7]
    forward = torch.cat([cp * cy, sp, cp * sy], -1)  # (B, 3)
    right = torch.stack([-forward[:, 2], torch.zeros_like(forward[:, 0]), forward[:, 0]], -1)
    right = right / right.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    up = torch.cross(right, forward, dim=-1)
    half = math.tan(math.radians(fov) / 2)
    rows = torch.div(pixels, width, rounding_mode="floor").to(poses.dtype)
    cols = (pixels % width).to(poses.dtype)
    u = ((cols + 0.5) / width * 2 - 1) * half
    v = -((rows + 0.5) / height * 2 - 1) * half
    dirs = forward[:, None] + u[..., None] * right[:, None] + v[..., None] * up[:, None]
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    return poses[:, None, :3].expand_as(dirs), dirs


def stratified_pixels(
    batch: int,
    height: int,
    width: int,
    rays: int,
    generator: torch.Generator | None = None,
    device: torch.device | None = None,
) -> Tensor:
    """``rays`` pixel indices per image ``(B, R)``: one uniformly random pixel in each tile.

    The image is cut into ``rays`` square tiles, so every ray batch covers the whole image.

    Raises:
        ShapeError: when ``H x W`` cannot be cut into ``rays`` equal square tiles.
    """
    tile = tile_size(height, width, rays)
    ty = torch.arange(height // tile, device=device)
    tx = torch.arange(width // tile, device=device)
    corner = (ty[:, None] * tile * width + tx[None, :] * tile).reshape(-1)  # (R,)
    offset = torch.randint(0, tile, (batch, rays, 2), generator=generator, device=device)
    return corner[None] + offset[..., 0] * width + offset[..., 1]


def tile_size(height: int, width: int, rays: int) -> int:
    """Side of the square tiles that cut ``H x W`` into ``rays`` tiles (else ShapeError)."""
    tile = math.isqrt(max(height * width // max(rays, 1), 1))
    if rays < 1 or tile * tile * rays != height * width or height % tile or width % tile:
        raise ShapeError(
            f"ray_batch={rays} cannot tile a {height}x{width} image: the ray sampler draws one ray "
            "per square tile, so H*W/ray_batch must be the square of a side dividing H and W "
            f"(e.g. ray_batch={height * width // 4} for 2x2 tiles)"
        )
    return tile


def positional_encoding(x: Tensor, freqs: int) -> Tensor:
    """``[x, sin(2^k pi x), cos(2^k pi x)]`` for ``k < freqs`` (NeRF's gamma), last axis."""
    if freqs == 0:
        return x
    scales = (2.0 ** torch.arange(freqs, device=x.device, dtype=x.dtype)) * math.pi
    angles = (x[..., None, :] * scales[:, None]).flatten(-2)
    return torch.cat([x, torch.sin(angles), torch.cos(angles)], -1)


def stratified_depths(
    rays: int,
    batch: int,
    samples: int,
    near: float,
    far: float,
    perturb: bool,
    device: torch.device | None = None,
) -> Tensor:
    """Depths ``(B, R, S)``: one per equal bin between near and far (random in the bin if perturb)."""
    edges = torch.linspace(near, far, samples + 1, device=device)
    lo, hi = edges[:-1], edges[1:]
    u = (
        torch.rand(batch, rays, samples, device=device)
        if perturb
        else torch.full((batch, rays, samples), 0.5, device=device)
    )
    return lo + (hi - lo) * u


def importance_depths(depths: Tensor, weights: Tensor, samples: int, perturb: bool) -> Tensor:
    """Hierarchical sampling: ``samples`` depths ``(B, R, S')`` from the coarse weights' pdf."""
    mids = 0.5 * (depths[..., 1:] + depths[..., :-1])
    w = weights[..., 1:-1].detach() + 1e-5  # the fine pass must not train the coarse weights
    cdf = torch.cumsum(w / w.sum(-1, keepdim=True), -1)
    cdf = torch.cat([torch.zeros_like(cdf[..., :1]), cdf], -1)
    shape = (*cdf.shape[:-1], samples)
    u = (
        torch.rand(shape, device=cdf.device)
        if perturb
        else torch.linspace(0, 1, samples, device=cdf.device).expand(shape)
    )
    idx = torch.searchsorted(cdf.contiguous(), u.contiguous(), right=True)
    below = (idx - 1).clamp_min(0)
    above = idx.clamp_max(cdf.shape[-1] - 1)
    c0, c1 = cdf.gather(-1, below), cdf.gather(-1, above)
    b0, b1 = mids.gather(-1, below), mids.gather(-1, above)
    t = (u - c0) / torch.where(c1 - c0 < 1e-5, torch.ones_like(c0), c1 - c0)
    return b0 + t * (b1 - b0)


def composite(rgb: Tensor, sigma: Tensor, depths: Tensor, dirs: Tensor) -> tuple[Tensor, Tensor]:
    """Alpha compositing: colours ``(B, R, 3)`` and weights ``(B, R, S)`` along each ray."""
    delta = depths[..., 1:] - depths[..., :-1]
    delta = torch.cat([delta, torch.full_like(delta[..., :1], 1e10)], -1)
    delta = delta * dirs.norm(dim=-1, keepdim=True)
    alpha = 1 - torch.exp(-torch.relu(sigma) * delta)
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[..., :1]), 1 - alpha + 1e-10], -1), -1)
    weights = alpha * trans[..., :-1]
    return (weights[..., None] * rgb).sum(-2), weights


def look_at(position: Tensor, target: Tensor) -> Tensor:
    """The 7-d pose of a camera at ``position (..., 3)`` looking at ``target (..., 3)``."""
    d = target - position
    yaw = torch.atan2(d[..., 2], d[..., 0])
    pitch = torch.atan2(d[..., 1], torch.hypot(d[..., 0], d[..., 2]))
    trig = torch.stack([yaw.cos(), yaw.sin(), pitch.cos(), pitch.sin()], -1)
    return torch.cat([position, trig], -1)


def orbit_poses(
    frames: int, device: torch.device | None = None, radius: float = 2.4, height: float = 1.2
) -> Tensor:
    """``frames`` poses ``(frames, 7)`` on a circle around the room's centre, looking at it."""
    angle = torch.arange(frames, device=device) * (2 * math.pi / frames)
    position = torch.stack(
        [radius * angle.cos(), torch.full_like(angle, height), radius * angle.sin()], -1
    )
    return look_at(position, torch.tensor(LOOK_AT, device=device).expand_as(position))


def canonical_pose(device: torch.device | None = None) -> Tensor:
    """The pose ``(7,)`` of single-image observations and of ``decode``: in front of the scene."""
    return look_at(
        torch.tensor(CANONICAL_POSITION, device=device), torch.tensor(LOOK_AT, device=device)
    )


#: Where the cameras of :class:`worldflux.envs.scene3d.Scene3D` look (the objects' height).
LOOK_AT = (0.0, 0.35, 0.0)
CANONICAL_POSITION = (0.0, 1.2, -2.4)
