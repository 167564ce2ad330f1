"""The GameGAN generator's unroll and its memory cycle loss (``EngineGenerator`` in the reference).

Axis legend: ``T`` frames, ``B`` batch, ``A`` actions, ``Z`` noise, ``M`` memory cells, ``V``
memory vector size, ``C, S`` image channels and side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.func import functional_call

if TYPE_CHECKING:
    from worldflux.models.gan.module import GameGAN


@dataclass
class Unroll:
    """What one generator unroll produced (lists hold one entry per generated step)."""

    frames: Tensor  # (T - 1, B, C, S, S) in [-1, 1]
    state: dict[str, Tensor]  # the dynamics state after the last step
    bases: list[list[Tensor]] = field(default_factory=list)  # renderer inputs per step
    masks: list[list[Tensor]] = field(default_factory=list)  # fine masks per step
    alphas: list[Tensor] = field(default_factory=list)  # memory attention (B, M) per step
    alpha_loss: Tensor | float = 0.0  # mean over steps of the non-static masks' L1


def unroll(
    model: GameGAN,
    frames: Tensor,
    actions: Tensor,
    warm_up: int,
    noise: Tensor,
    state: dict[str, Tensor] | None = None,
    keep_last: bool = False,
) -> Unroll:
    """Run the generator over ``actions (K, B, A)`` from ``frames (>= 1, B, C, S, S)``.

    Step ``i`` takes ground-truth ``frames[i]`` while ``i < warm_up`` (and always at ``i = 0``),
    else the frame it generated at ``i - 1``, with ``actions[i]`` and ``noise[i] (B, Z)``.

    Args:
        model: the GameGAN whose encoder, engine, memory and renderer run.
        frames: time-major frames in ``[-1, 1]``.
        actions: the action taken at each step (one-hot).
        warm_up: ground-truth steps.
        noise: per-step noise.
        state: dynamics state to continue from (``initial_state``'s keys); fresh if ``None``.
        keep_last: put the last generated frame in the returned state as ``frame``.
    """
    c = model.config
    b = frames.shape[1]
    st = {k: v for k, v in (state or model.initial_state(b)).items() if k != "frame"}
    prev, outs = frames[0], []
    result = Unroll(frames=frames, state=st)
    alpha_loss: Tensor | float = 0.0
    for i in range(actions.shape[0]):
        inp = frames[i] if i < warm_up else prev
        if c.input_detach:
            inp = inp.detach()  # no gradient through the fed-back frame into earlier steps
        s = model.encoder(inp)
        h, cell = model.engine(st["h"], st["c"], s, actions[i], noise[i], st.get("read_v"))
        new = {"h": h, "c": cell}
        if model.memory is not None:
            bases, mem, alpha, read_v = model.memory(
                h, actions[i], st["h"], st["alpha"], st["memory"]
            )
            new.update(memory=mem, alpha=alpha, read_v=read_v)
            result.alphas.append(alpha)
        else:
            bases = [h]
        prev, masks, _ = model.renderer(bases)
        if c.alpha_loss_multiplier > 0 and len(masks) > 1:
            for m in masks[1:]:
                alpha_loss = alpha_loss + m.abs().sum() / b
        st = new
        outs.append(prev)
        result.bases.append(bases)
        result.masks.append(masks)
    result.frames = torch.stack(outs)
    result.alpha_loss = alpha_loss / max(actions.shape[0], 1)
    if keep_last:
        st["frame"] = prev
    result.state = st
    return result


def cycle_loss(model: GameGAN, gen: Unroll) -> Tensor:
    """Memory cycle loss: render the static component from what memory holds at the end.

    For each step the memory is read back at that step's attention from the final memory and the
    static component is rendered from it alone; it should match the static component drawn at
    that step. As in the reference (which steps only its temporal optimiser on this term) the
    gradient reaches the dynamics engine and the memory, not the renderer: the renderer runs here
    with detached parameters (re-rendering the steps, which gives the same images).
    """
    c = model.config
    assert model.memory is not None
    params: dict[str, Any] = {k: v.detach() for k, v in model.renderer.named_parameters()}
    bases = [torch.cat(parts) for parts in zip(*gen.bases)]  # per component, (N, V)
    _, masks, imgs = functional_call(model.renderer, params, (bases,))
    alphas = torch.stack(gen.alphas)  # (T - 1, B, M)
    reads = torch.einsum("tbm,bmv->tbv", alphas, gen.state["memory"]).flatten(0, 1)
    _, _, rev_imgs = functional_call(model.renderer, params, ([reads, torch.zeros_like(reads)],))
    k = c.num_components
    static = rev_imgs[k]  # the unmasked static-component image
    if c.rev_multiply_map:
        static, target = static * masks[0], imgs[0]
    else:
        target = imgs[k]
    return (static - target).pow(2).sum() / target.shape[0]
