"""GameGAN dynamics engine and memory module (nv-tlabs/GameGAN_code @ 1195c39).

The dynamics engine encodes the current frame, embeds the action and a noise vector ``z``, and
advances an action-conditioned LSTM whose gates are ``W (W_h h * W_x x) + b(s)``: the hidden state
and the input interact multiplicatively, and the frame code ``s`` biases every gate. The memory
module keeps a 2-D grid of vectors; the action produces a 3x3 kernel that shifts an attention map
over the grid (so "left" and "right" move it in opposite directions), the LSTM state writes into
the attended cell and the renderer reads from it.

Axis legend: ``B`` batch, ``A`` actions, ``Z`` noise size, ``D`` hidden size, ``M`` memory cells,
``V`` memory vector size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldflux.models.gan.layers import conv_out


class FrameEncoder(nn.Module):
    """Four strided convolutions and a linear layer: frame ``(B, C, H, W)`` to code ``(B, D)``."""

    def __init__(self, in_channels: int, image_size: int, out_dim: int) -> None:
        super().__init__()
        ch = out_dim // 8
        size = conv_out(image_size, 4, 1, 1)
        for _ in range(3):
            size = conv_out(size, 3, 2)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, ch, 4, 1, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(ch, ch, 3, 2),
            nn.LeakyReLU(0.2),
            nn.Conv2d(ch, ch, 3, 2),
            nn.LeakyReLU(0.2),
            nn.Conv2d(ch, ch, 3, 2),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(ch * size * size, out_dim),
            nn.LeakyReLU(0.2),
        )

    def forward(self, frame: Tensor) -> Tensor:
        return self.net(frame)


class ActionLSTM(nn.Module):
    """LSTM cell with multiplicative hidden/input interaction and an external gate bias."""

    def __init__(self, input_dim: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.project_input = nn.Linear(input_dim, input_dim)
        self.project_h = nn.Linear(hidden_size, input_dim)
        self.v2h = nn.Sequential(
            nn.Linear(input_dim, input_dim),
            nn.LeakyReLU(0.2),
            nn.Linear(input_dim, 4 * hidden_size),
        )
        std = 1.0 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -std, std)

    def forward(self, h: Tensor, c: Tensor, x: Tensor, gate_bias: Tensor) -> tuple[Tensor, Tensor]:
        """One step; gates are ordered input, forget, cell, output as in the reference."""
        gates = self.v2h(self.project_h(h) * self.project_input(x)) + gate_bias
        i, f, g, o = gates.chunk(4, dim=1)
        c = c * f.sigmoid() + i.sigmoid() * g.tanh()
        return o.sigmoid() * c.tanh(), c


class DynamicsEngine(nn.Module):
    """Action and noise embeddings, input network and :class:`ActionLSTM` (``EngineModule``)."""

    def __init__(
        self, action_dim: int, z_dim: int, hidden_dim: int, state_dim: int, memory_dim: int
    ) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.a_to_input = nn.Sequential(nn.Linear(action_dim, hidden_dim), nn.LeakyReLU(0.2))
        self.z_to_input = nn.Sequential(nn.Linear(z_dim, hidden_dim), nn.LeakyReLU(0.2))
        e_dim = 2 * hidden_dim + memory_dim  # memory_dim is 0 without the memory module
        self.f_e = nn.Sequential(nn.Linear(e_dim, e_dim), nn.LeakyReLU(0.2))
        self.rnn_e = ActionLSTM(e_dim, hidden_dim)
        self.state_bias = nn.Sequential(nn.Linear(state_dim, 4 * hidden_dim))

    def forward(
        self, h: Tensor, c: Tensor, s: Tensor, a: Tensor, z: Tensor, read_v: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        parts = [self.a_to_input(a), self.z_to_input(z)]
        if read_v is not None:
            parts.append(read_v)
        return self.rnn_e(h, c, self.f_e(torch.cat(parts, 1)), self.state_bias(s))


class Memory(nn.Module):
    """2-D memory with action-driven attention shifts (GameGAN section 3.2).

    Args:
        action_dim: action size ``A``.
        hidden_dim: LSTM hidden size ``D``.
        memory_dim: memory vector size ``V``.
        num_cells: number of cells ``M`` (a square number, laid out as a square grid).
        flip_actions: ``[[a, b], ...]``: action ``a`` uses the flipped kernel of action ``b``
            (the game's symmetry, e.g. left = mirrored right).
        softmax_kernel: normalise the 3x3 shift kernel with a softmax at ``kernel_temperature``.
        kernel_temperature: softmax temperature of the kernel (``alpha_T``).
        query_from_h: gate from the hidden state itself (``mem_use_h``), not from its change.
    """

    def __init__(
        self,
        action_dim: int,
        hidden_dim: int,
        memory_dim: int,
        num_cells: int,
        flip_actions: list[list[int]],
        softmax_kernel: bool,
        kernel_temperature: float,
        query_from_h: bool,
    ) -> None:
        super().__init__()
        self.num_cells, self.memory_dim = num_cells, memory_dim
        self.side = math.isqrt(num_cells)
        self.softmax_kernel, self.kernel_temperature = softmax_kernel, kernel_temperature
        self.query_from_h = query_from_h
        self.flip_actions = [(int(a), int(b)) for a, b in flip_actions]
        self.get_vars_h = nn.Sequential(nn.Linear(hidden_dim, 3 * memory_dim))
        self.get_kernel = nn.Sequential(
            nn.Linear(action_dim, memory_dim), nn.LeakyReLU(0.2), nn.Linear(memory_dim, 9)
        )
        self.get_gate = nn.Sequential(
            nn.Linear(hidden_dim, memory_dim),
            nn.LeakyReLU(0.2),
            nn.Linear(memory_dim, 1),
            nn.Sigmoid(),
        )
        stdev = 1 / math.sqrt(num_cells + memory_dim)
        self.register_buffer("mem_bias", torch.empty(num_cells, memory_dim).uniform_(-stdev, stdev))

    def init_state(self, batch_size: int) -> tuple[Tensor, Tensor, Tensor]:
        """Fresh memory ``(B, M, V)``, attention on the centre cell ``(B, M)`` and read ``(B, V)``."""
        memory = self.mem_bias.unsqueeze(0).repeat(batch_size, 1, 1)
        alpha = self.mem_bias.new_zeros(batch_size, self.num_cells)
        alpha[:, self.side * (self.side // 2) + self.side // 2] = 1.0
        return memory, alpha, self.mem_bias.new_zeros(batch_size, self.memory_dim)

    @staticmethod
    def read(alpha: Tensor, memory: Tensor) -> Tensor:
        """Attention-weighted read ``(B, V)``."""
        return (alpha.unsqueeze(1) @ memory).squeeze(1)

    def _kernels(self, a: Tensor) -> Tensor:
        kernels = self.get_kernel(a).view(-1, 1, 3, 3)
        if self.flip_actions:
            label = a.argmax(1)
            mask = torch.zeros_like(a[:, :1])
            mirrored = a.clone()
            for src, dst in self.flip_actions:
                hit = (label == src).unsqueeze(1).to(a.dtype)
                mirrored[:, dst : dst + 1] = hit + (1 - hit) * mirrored[:, dst : dst + 1]
                mirrored[:, src : src + 1] = (1 - hit) * mirrored[:, src : src + 1]
                mask = mask + hit
            flipped = torch.flip(self.get_kernel(mirrored).view(-1, 1, 3, 3), [2, 3])
            mask = mask.view(-1, 1, 1, 1)
            kernels = (1 - mask) * kernels + mask * flipped
        if self.softmax_kernel:
            kernels = F.softmax(kernels.flatten(1) / self.kernel_temperature, 1).view(-1, 1, 3, 3)
        return kernels

    def forward(
        self, h: Tensor, a: Tensor, prev_h: Tensor, alpha: Tensor, memory: Tensor
    ) -> tuple[list[Tensor], Tensor, Tensor, Tensor]:
        """Shift attention, write and read; returns ``([read, other], memory, alpha, read)``."""
        b = a.shape[0]
        query = h if self.query_from_h else F.normalize(h, dim=1) - F.normalize(prev_h, dim=1)
        kernels = self._kernels(a)
        gate = self.get_gate(query)
        grid = alpha.view(1, b, self.side, self.side)
        shifted = F.conv2d(grid, kernels, padding=1, groups=b).view(b, -1)
        alpha = shifted * gate + alpha * (1 - gate)
        erase, add, other = self.get_vars_h(h).split(self.memory_dim, 1)
        erase = torch.sigmoid(erase)
        w = alpha.unsqueeze(-1)
        memory = memory * (1 - w @ erase.unsqueeze(1)) + w @ add.unsqueeze(1)
        read_v = self.read(alpha, memory)
        return [read_v, other], memory, alpha, read_v
