"""Open-loop fidelity on held-out episodes: predict ``H`` steps from a context, score per horizon.

What is predicted follows the model's declared capabilities (never its family name):

- ``observe`` + ``rollout`` + ``decode``: the model filters ``context`` observed steps, imagines
  the next ``H`` under the recorded actions and decodes them; scored in observation space (MSE;
  PSNR and SSIM through torchmetrics for images, in ``[0, 1]``), plus reward MSE and termination
  accuracy where the decoder or the rollout predicts them;
- ``encode`` + ``rollout`` without a decoder (JEPA, V-JEPA 2, TD-MPC2, physics): the model encodes
  the last context frame, imagines ``H`` steps, and the predicted latents are scored against the
  model's own encoding of the true frames (latent MSE; token accuracy for discrete codes).

Every table carries the baselines: **copy-last** (the last context observation, or its latent,
repeated) and **mean** (the mean training observation, or the mean latent of training frames).
A model that copies the last frame therefore scores exactly as the copy-last row.

Axis legend: ``N`` windows, ``C`` context steps, ``H`` horizon.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from worldflux.compare.data import CompareData, obs_key
from worldflux.compare.models import Entry, capabilities
from worldflux.core.protocols import Rollout
from worldflux.errors import ConfigError, UnsupportedOperationError

#: Capabilities of each prediction path (checked in this order).
DECODE_PATH = frozenset({"observe", "rollout", "decode"})
LATENT_PATH = frozenset({"encode", "rollout"})
#: PSNR of a perfect prediction is infinite; the table caps it here (dB).
PSNR_CAP = 100.0


@dataclass
class Fidelity:
    """One row of the open-loop table: per-horizon metrics in one space.

    Attributes:
        name: the model or baseline.
        space: ``"obs"`` or ``"latent:<model>"`` (the model's own latent space).
        metrics: metric name -> ``H`` values (horizon 1 first).
        baseline: whether the row is a baseline.
        steps_per_second: imagined (and decoded) steps per second of the prediction call.
    """

    name: str
    space: str
    metrics: dict[str, list[float]] = field(default_factory=dict)
    baseline: bool = False
    steps_per_second: float | None = None


def windows(data: CompareData, context: int, horizon: int, count: int) -> dict[str, Any]:
    """``count`` windows of ``context + horizon`` steps, evenly spread over held-out episodes.

    Raises:
        ConfigError: no held-out episode is long enough.
    """
    if context < 1 or horizon < 1:
        raise ConfigError(
            f"open_loop.context and open_loop.horizon must be >= 1, got {context}, {horizon}"
        )
    length = context + horizon
    starts = [
        (i, s) for i, ep in enumerate(data.held_out) for s in range(len(ep["reward"]) - length + 1)
    ]
    if not starts:
        longest = max(len(ep["reward"]) for ep in data.held_out)
        raise ConfigError(
            f"open loop needs held-out windows of context + horizon = {length} steps; the "
            f"longest held-out episode has {longest} (lower open_loop.horizon)"
        )
    pick = np.linspace(0, len(starts) - 1, num=min(count, len(starts))).round().astype(int)
    chosen = [starts[i] for i in sorted(set(pick.tolist()))]
    out: dict[str, Any] = {}
    for key in data.held_out[0]:
        if key.startswith("goal/"):
            continue
        out[key] = torch.as_tensor(
            np.stack([data.held_out[i][key][s : s + length] for i, s in chosen])
        )
    out["first"] = out["first"].clone()
    out["first"][:, 0] = True  # each window is filtered as a fresh start
    out["action"] = out["action"].float()
    return out


def _obs(batch: Mapping[str, Any], data: CompareData, sl: slice) -> Any:
    if data.spec.single:
        return batch["obs/obs"][:, sl]
    return {k[4:]: v[:, sl] for k, v in batch.items() if k.startswith("obs/")}


def _to_unit(x: Tensor, kind: str) -> Tensor:
    """Images to float ``[0, 1]`` (uint8 or float); vectors as float."""
    if kind == "image":
        return x.float() / 255.0 if x.dtype == torch.uint8 else x.float().clamp(0.0, 1.0)
    return x.float()


def obs_metrics(pred: Tensor, truth: Tensor, kind: str) -> dict[str, list[float]]:
    """Per-horizon MSE (and PSNR, SSIM for images) of ``pred`` vs ``truth`` ``(N, H, ...)``."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    from worldflux.nn.image_metrics import frame_ssim

    pred, truth = _to_unit(pred, kind), _to_unit(truth, kind)
    if pred.shape != truth.shape:
        raise ConfigError(
            f"predicted observations have shape {tuple(pred.shape)}, the data {tuple(truth.shape)}"
        )
    dims = tuple(range(2, pred.dim()))
    out = {"mse": (pred - truth).pow(2).mean(dims).mean(0).tolist()}
    if kind == "image":
        n, h = pred.shape[:2]
        flat_p, flat_t = pred.flatten(0, 1), truth.flatten(0, 1)
        psnr = peak_signal_noise_ratio(
            flat_p, flat_t, data_range=1.0, reduction="none", dim=(1, 2, 3)
        ).clamp(max=PSNR_CAP)
        ssim = frame_ssim(flat_p, flat_t)
        out["psnr"] = psnr.view(n, h).mean(0).tolist()
        out["ssim"] = ssim.view(n, h).mean(0).tolist()
    return out


def _latents(out: Any, like: Tensor, horizon: int) -> Tensor:
    """The predicted latents ``(N, H, *Z)`` in a rollout's output, matched by shape."""
    if isinstance(out, Rollout):
        candidates = (
            [out.states] if not isinstance(out.states, Mapping) else list(out.states.values())
        )
    elif isinstance(out, Mapping):
        candidates = list(out.values())
    else:
        candidates = [out]
    want = (like.shape[0], horizon, *like.shape[1:])
    for value in candidates:
        if isinstance(value, Tensor) and tuple(value.shape) == want:
            return value
    raise ConfigError(
        f"the rollout returns no latents of the encoder's shape {want}; open loop cannot score it"
    )


def _reward_metrics(
    out: Any, decoded: Mapping[str, Any], batch: Mapping[str, Any], context: int
) -> dict[str, list[float]]:
    metrics: dict[str, list[float]] = {}
    reward = decoded.get("reward")
    cont = decoded.get("continue")
    if isinstance(out, Rollout):
        reward = out.rewards if reward is None else reward
        cont = out.continues if cont is None else cont
    elif isinstance(out, Mapping):
        reward = out.get("reward", reward)
    if isinstance(reward, Tensor) and reward.dim() >= 2:
        truth = batch["reward"][:, context:].float()
        metrics["reward_mse"] = (
            (reward.reshape(truth.shape).float() - truth).pow(2).mean(0).tolist()
        )
    if isinstance(cont, Tensor) and cont.dim() >= 2:
        alive = ~batch["terminal"][:, context:]
        hit = (cont.reshape(alive.shape) > 0.5) == alive
        metrics["term_acc"] = hit.float().mean(0).tolist()
    return metrics


def _timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    with torch.no_grad():
        result = fn()
    return result, time.perf_counter() - start


def predict(
    entry: Entry, batch: Mapping[str, Any], data: CompareData, context: int
) -> list[Fidelity]:
    """The model's rows (its own, plus latent baselines for latent-space scoring)."""
    model, caps = entry.model, capabilities(entry.model)
    key = obs_key(data.spec)
    kind = data.spec.obs[key].kind
    device = model.device
    b = {k: v.to(device) for k, v in batch.items()}
    horizon = b["action"].shape[1] - context
    n = b["action"].shape[0]
    if caps >= DECODE_PATH:

        def run() -> tuple[Any, Mapping[str, Any]]:
            head = slice(0, context)
            _, last = model.observe(_obs(b, data, head), b["action"][:, head], b["first"][:, head])
            out = model.rollout(last, b["action"][:, context:])
            return out, model.decode(out)

        (out, decoded), seconds = _timed(run)
        pred = decoded.get("obs")
        if isinstance(pred, Mapping):
            pred = pred[key]
        row = Fidelity(entry.name, "obs", steps_per_second=n * horizon / max(seconds, 1e-9))
        row.metrics = obs_metrics(pred.cpu(), batch[f"obs/{key}"][:, context:], kind)
        row.metrics.update({k: v for k, v in _reward_metrics(out, decoded, b, context).items()})
        return [row]
    if caps >= LATENT_PATH:
        obs_last = _obs(b, data, slice(context - 1, context))
        obs_last = (
            obs_last[:, 0]
            if isinstance(obs_last, Tensor)
            else {k: v[:, 0] for k, v in obs_last.items()}
        )

        def run_latent() -> tuple[Tensor, Any]:
            z0 = model.encode(obs_last)
            return z0, model.rollout(z0, b["action"][:, context:])

        (z0, out), seconds = _timed(run_latent)
        with torch.no_grad():
            target = model.encode(_obs(b, data, slice(context, None)))
        pred = _latents(out, z0, horizon)
        space = f"latent:{entry.name}"
        rows = [Fidelity(entry.name, space, steps_per_second=n * horizon / max(seconds, 1e-9))]
        copy = z0.unsqueeze(1).expand_as(target)
        mean = _mean_latent(model, data, key).to(target.device).expand_as(target)
        rows.append(Fidelity(f"copy-last ({entry.name} latent)", space, baseline=True))
        rows.append(Fidelity(f"mean ({entry.name} latent)", space, baseline=True))
        for row, guess in zip(rows, (pred, copy, mean)):
            row.metrics = latent_metrics(guess, target)
        rows[0].metrics.update(_reward_metrics(out, {}, b, context))
        return rows
    raise UnsupportedOperationError(
        f"model {entry.name!r} cannot predict open loop: it needs the capabilities "
        f"{sorted(DECODE_PATH)} or {sorted(LATENT_PATH)}, it has {sorted(caps)}"
    )


def latent_metrics(pred: Tensor, target: Tensor) -> dict[str, list[float]]:
    """Per-horizon latent MSE, or token accuracy for integer codes."""
    dims = tuple(range(2, target.dim()))
    if not target.is_floating_point():
        acc = (pred.to(target.dtype) == target).float()
        return {"token_acc": (acc.mean(dims) if dims else acc).mean(0).tolist()}
    err = (pred.float() - target.float()).pow(2)
    return {"latent_mse": (err.mean(dims) if dims else err).mean(0).tolist()}


def _mean_latent(model: Any, data: CompareData, key: str, limit: int = 256) -> Tensor:
    """Mean encoding of up to ``limit`` training frames (the mean baseline in latent space);
    the most frequent code per position for discrete codes."""
    frames = np.concatenate([ep[f"obs/{key}"] for ep in data.train])
    pick = np.linspace(0, len(frames) - 1, num=min(limit, len(frames))).round().astype(int)
    obs: Any = torch.as_tensor(frames[pick]).to(model.device)
    if not data.spec.single:
        obs = {
            k[4:]: torch.as_tensor(np.concatenate([ep[k] for ep in data.train])[pick]).to(
                model.device
            )
            for k in data.train[0]
            if k.startswith("obs/")
        }
    with torch.no_grad():
        z = model.encode(obs)
    if not z.is_floating_point():
        return z.mode(0).values.unsqueeze(0).unsqueeze(0)
    return z.float().mean(0, keepdim=True).unsqueeze(0)


def baselines(batch: Mapping[str, Any], data: CompareData, context: int) -> list[Fidelity]:
    """Copy-last-frame and mean-frame rows in observation space."""
    key = obs_key(data.spec)
    kind = data.spec.obs[key].kind
    obs = batch[f"obs/{key}"]
    truth = obs[:, context:]
    copy = obs[:, context - 1 : context].expand_as(truth)
    mean = torch.as_tensor(data.mean_frame()[key], dtype=torch.float32)
    if kind == "image":
        mean = mean / 255.0
    rows = []
    for name, guess in (("copy-last frame", copy), ("mean frame", mean.expand_as(truth))):
        rows.append(Fidelity(name, "obs", obs_metrics(guess, truth, kind), baseline=True))
    return rows


def evaluate(
    entries: list[Entry],
    data: CompareData,
    context: int,
    horizon: int,
    count: int,
    notes: list[str] | None = None,
) -> list[Fidelity]:
    """The whole open-loop table: observation baselines, then each model's rows.

    A model with neither prediction path gets no row; why is appended to ``notes``.
    """
    batch = windows(data, context, horizon, count)
    rows = baselines(batch, data, context)
    for entry in entries:
        try:
            rows.extend(predict(entry, batch, data, context))
        except UnsupportedOperationError as err:
            if notes is None:
                raise
            notes.append(str(err))
    return rows
