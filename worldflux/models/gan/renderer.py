"""GameGAN rendering engine (nv-tlabs/GameGAN_code @ 1195c39, ``rendering_engine.py``).

With one component the engine is a BigGAN-style generator: a spectrally normalised linear layer
maps the LSTM state to a ``bottom_width`` square feature map, residual up-sampling blocks with
instance norm (self-attention at ``attention_resolution``) grow it to the frame, and a conv
with ``tanh`` draws it. With two components (the memory configs) each component (0: the static
content read from memory, 1: the dynamic one from the LSTM) first draws a rough location map and
attribute maps, its vector is placed on the map, up-sampled through its own blocks (SPADE injects
the attributes at ``spade_index``), and a fine mask network mixes the component images.

Axis legend: ``B`` batch, ``K`` components, ``C`` image channels, ``S`` image side,
``w`` bottom width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldflux.models.gan.layers import (
    SPADE,
    GBlock,
    SelfAttention,
    SimpleGBlock,
    SNConv2d,
    SNLinear,
    orthogonal_init,
)


def block_channels(ch: int, num_blocks: int) -> tuple[list[int], list[int]]:
    """``(in, out)`` channels of the up-sampling blocks: ``16ch, 8ch, 4ch -> 8ch, 4ch, 2ch`` at 64."""
    ins = [ch * 2 ** (num_blocks + 1 - i) for i in range(num_blocks)]
    return ins, [c // 2 for c in ins]


class RenderingEngine(nn.Module):
    """Frames ``(B, C, S, S)`` from the dynamics engine's (or the memory's) vectors.

    Args:
        in_dim: size of the input vectors (LSTM hidden or memory vector size).
        channels: width multiplier ``ch`` (``nfilterG``).
        out_channels: image channels ``C``.
        num_blocks: up-sampling blocks (frame side = ``bottom_width * 2 ** num_blocks`` for
            residual blocks).
        bottom_width: side of the first feature map.
        num_components: 1 (simple engine) or 2 (disentangling engine).
        simple_blocks: transposed-conv blocks instead of residual ones.
        attention: add self-attention after the last block (single component only).
        with_memory: build the (unused in the single-component forward) memory mask heads,
            as the reference does when the memory module is on.
        fixed_v_dim, att_dim, spade_index: component vector size, attribute channels and the
            block where SPADE injects them (``-1``: none).
        map_temperature, mask_temperature: temperatures of the rough maps and the fine mask.
        sigmoid_maps: rough maps through a sigmoid (else a softmax over components).
    """

    def __init__(
        self,
        in_dim: int,
        channels: int,
        out_channels: int,
        num_blocks: int,
        bottom_width: int,
        num_components: int = 1,
        simple_blocks: bool = False,
        attention: bool = True,
        with_memory: bool = False,
        fixed_v_dim: int = 512,
        att_dim: int = 512,
        spade_index: int = -1,
        map_temperature: float = 0.1,
        mask_temperature: float = 1.0,
        sigmoid_maps: bool = False,
    ) -> None:
        super().__init__()
        self.bw, self.k = bottom_width, num_components
        self.spade_index, self.sigmoid_maps = spade_index, sigmoid_maps
        self.map_temperature, self.mask_temperature = map_temperature, mask_temperature
        ins, outs = block_channels(channels, num_blocks)
        area = bottom_width**2
        self.linear, self.get_map, self.spade_layers = (
            nn.ModuleList(),
            nn.ModuleList(),
            nn.ModuleList(),
        )
        self.all_blocks, self.output_layer = nn.ModuleList(), nn.ModuleList()
        heads = []
        for _ in range(num_components):
            if num_components > 1:
                self.get_map.append(nn.Sequential(nn.Linear(in_dim, (1 + att_dim) * area)))
                if spade_index > -1:
                    spade_in = fixed_v_dim if spade_index == 0 else ins[spade_index]
                    self.spade_layers.append(SPADE(spade_in, att_dim))
                self.linear.append(nn.Sequential(SNLinear(in_dim, fixed_v_dim)))
            else:
                self.linear.append(SNLinear(in_dim, ins[0] * area))
            blocks = nn.ModuleList()
            for i in range(num_blocks):
                cin = ins[i] if (i > 0 or num_components == 1) else fixed_v_dim
                if simple_blocks:
                    blocks.append(nn.ModuleList([SimpleGBlock(cin, outs[i], 2 if i == 0 else 1)]))
                else:
                    block: list[nn.Module] = [GBlock(cin, outs[i])]
                    if attention and num_components == 1 and i == num_blocks - 1:
                        block.append(SelfAttention(outs[i]))
                    blocks.append(nn.ModuleList(block))
            self.all_blocks.append(blocks)
            kernel, pad = (2, 0) if simple_blocks else (3, 1)
            self.output_layer.append(
                nn.Sequential(nn.ReLU(), SNConv2d(outs[-1], out_channels, kernel, pad))
            )
            if num_components > 1 or with_memory:
                # the single-component memory head always uses a 3x3 conv in the reference
                hk, hp = (kernel, pad) if num_components > 1 else (3, 1)
                heads.append(
                    nn.Sequential(nn.ReLU(), SNConv2d(outs[-1], 1, hk, hp), nn.LeakyReLU(0.2))
                )
        if num_components > 1:
            self.out_to_one_dim = nn.ModuleList(heads)
        elif with_memory:
            self.out_to_one_dim = heads[0]  # type: ignore[assignment]
        if num_components > 1 or with_memory:
            k = max(num_components, 2)
            self.fine_mask = nn.Sequential(
                nn.Conv2d(k, 512, 1), nn.LeakyReLU(0.2), nn.Conv2d(512, k, 1)
            )
        orthogonal_init(self)

    def forward(self, z: list[Tensor]) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """Render from per-component vectors ``z[k] (B, in_dim)``.

        Returns:
            ``(frame, fine_masks, base_imgs)``: the frame in ``[-1, 1]``; with several components
            the per-component fine masks ``(B, 1, S, S)`` and the masked then unmasked
            component images (empty lists for the single-component engine).
        """
        if self.k == 1:
            h = self.linear[0](z[0]).view(z[0].shape[0], -1, self.bw, self.bw)
            for blocklist in self.all_blocks[0]:
                for block in blocklist:
                    h = block(h)
            return torch.tanh(self.output_layer[0](h)), [], []
        return self._render_components(z)

    def _render_components(self, z: list[Tensor]) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        b = z[0].shape[0]
        vs, atts, maps = [], [], []
        for ind in range(self.k):
            vs.append(self.linear[ind](z[ind]))
            tmp = self.get_map[ind](z[ind]).view(b, -1, self.bw, self.bw)
            maps.append(tmp[:, :1])
            atts.append(tmp[:, 1:])
        rough = torch.cat(maps, 1) / self.map_temperature
        rough = torch.sigmoid(rough) if self.sigmoid_maps else F.softmax(rough, 1)
        singles, unmasked = [], []
        for ind in range(self.k):
            cur_map = rough[:, ind : ind + 1]
            h = cur_map * vs[ind][:, :, None, None]
            for index, blocklist in enumerate(self.all_blocks[ind]):
                do_norm = do_act = True
                if self.spade_index > -1:
                    # after SPADE the blocks run without instance norm (the reference's no_in)
                    do_norm = index < self.spade_index
                    if index == self.spade_index:
                        do_act = False
                        h = self.spade_layers[ind](h, cur_map * atts[ind])
                for block in blocklist:
                    h = block(h, do_norm=do_norm, do_activation=do_act)
            singles.append(self.out_to_one_dim[ind](h))
            unmasked.append(torch.tanh(self.output_layer[ind](h)))
        fine = F.softmax(self.fine_mask(torch.cat(singles, 1)) / self.mask_temperature, 1)
        fine_masks = list(fine.split(1, 1))
        masked = [img * m for img, m in zip(unmasked, fine_masks)]
        frame = masked[0]
        for img in masked[1:]:
            frame = frame + img
        return frame, fine_masks, masked + unmasked
