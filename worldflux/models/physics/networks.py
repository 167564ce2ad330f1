"""Networks of the physics family: the reference MLPs, the autoencoder and the learned fields.

Layouts follow greydanus/hamiltonian-nn @ bcc3622 (``nn_models.py``: ``MLP`` with ``linear1..3``,
orthogonal weight init, last layer without bias; ``MLPAutoencoder`` with ``linear1..8`` and
residual hidden layers) and MilesCranmer/lagrangian_nns @ 2fc26cb (``models.py``: dense layers with
softplus). Attribute names mirror the reference state dicts so same-weights comparisons and
loading are a plain key mapping.

Axis legend: ``N`` flat batch, ``D`` state size (``2 * Q``), ``Q`` generalised coordinates,
``A`` action (generalised force) size, ``P`` flattened pixels.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from worldflux.errors import ConfigError

NONLINEARITIES = ("tanh", "relu", "softplus", "sigmoid", "elu", "selu")


def activation(name: str) -> nn.Module:
    """The activation module called ``name`` (one of :data:`NONLINEARITIES`)."""
    table = {
        "tanh": nn.Tanh,
        "relu": nn.ReLU,
        "softplus": nn.Softplus,
        "sigmoid": nn.Sigmoid,
        "elu": nn.ELU,
        "selu": nn.SELU,
    }
    if name not in table:
        raise ConfigError(f"nonlinearity must be one of {NONLINEARITIES}, got {name!r}")
    return table[name]()


class MLP(nn.Module):
    """The reference MLP: ``num_hidden`` hidden layers, orthogonal init, optional last bias.

    With ``num_hidden=2`` and ``last_bias=False`` this is hamiltonian-nn's ``MLP`` (layers
    ``linear1``, ``linear2``, ``linear3``); the LNN uses ``num_hidden=3``, softplus and a last bias.

    Args:
        input_dim: input size.
        hidden_dim: width of every hidden layer.
        output_dim: output size.
        num_hidden: number of hidden layers (>= 1).
        nonlinearity: activation name.
        last_bias: whether the output layer has a bias.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        output_dim: int,
        num_hidden: int = 2,
        nonlinearity: str = "tanh",
        last_bias: bool = False,
    ) -> None:
        super().__init__()
        sizes = [input_dim] + [hidden_dim] * num_hidden
        for i in range(num_hidden):
            self.add_module(f"linear{i + 1}", nn.Linear(sizes[i], sizes[i + 1]))
        self.add_module(
            f"linear{num_hidden + 1}", nn.Linear(hidden_dim, output_dim, bias=last_bias)
        )
        self.num_layers = num_hidden + 1
        self.act = activation(nonlinearity)
        for layer in self.layers():
            # the reference's "principled initialization"; meta tensors have nothing to fill
            if layer.weight.device.type != "meta":
                nn.init.orthogonal_(layer.weight)

    def lnn_init_(self) -> None:
        """Re-initialise as lagrangian_nns @ 2fc26cb ``lnn.custom_init`` (the paper's LNN init).

        Biases zero; weights Gaussian with std ``s / sqrt(n)``, ``n`` the larger side of the
        layer, ``s = 2.2`` for the first layer, ``0.58 i`` for the ``i``-th middle one and ``n``
        for the last (so the last layer's std is ``sqrt(n)``). Found by the reference's search
        for an initialisation under which the Euler-Lagrange solve trains.
        """
        layers = self.layers()
        for i, layer in enumerate(layers):
            if layer.weight.device.type == "meta":
                continue
            n = max(layer.weight.shape)
            scale = 2.2 if i == 0 else (float(n) if i == len(layers) - 1 else 0.58 * i)
            with torch.no_grad():
                layer.weight.normal_(0.0, scale / n**0.5)
                if layer.bias is not None:
                    layer.bias.zero_()

    def layers(self) -> list[nn.Linear]:
        """The linear layers in order."""
        return [getattr(self, f"linear{i + 1}") for i in range(self.num_layers)]

    def forward(self, x: Tensor) -> Tensor:
        """``(N, input_dim) -> (N, output_dim)``."""
        layers = self.layers()
        for layer in layers[:-1]:
            x = self.act(layer(x))
        return layers[-1](x)


class MLPAutoencoder(nn.Module):
    """hamiltonian-nn's ``MLPAutoencoder``: 3 hidden layers each way, residual after the first.

    Args:
        input_dim: flattened pixel size ``P`` (``2 * 28 * 28`` in the reference).
        hidden_dim: hidden width.
        latent_dim: latent size (2: one ``q`` and one ``p``).
        nonlinearity: activation (the reference trains it with ``relu``).
    """

    def __init__(
        self, input_dim: int, hidden_dim: int, latent_dim: int, nonlinearity: str = "relu"
    ) -> None:
        super().__init__()
        dims = [
            (input_dim, hidden_dim), (hidden_dim, hidden_dim), (hidden_dim, hidden_dim),
            (hidden_dim, latent_dim), (latent_dim, hidden_dim), (hidden_dim, hidden_dim),
            (hidden_dim, hidden_dim), (hidden_dim, input_dim),
        ]  # fmt: skip
        for i, (a, b) in enumerate(dims):
            self.add_module(f"linear{i + 1}", nn.Linear(a, b))
        self.act = activation(nonlinearity)
        for i in range(8):
            w = getattr(self, f"linear{i + 1}").weight
            if w.device.type != "meta":
                nn.init.orthogonal_(w)

    def encode(self, x: Tensor) -> Tensor:
        """Pixels ``(N, P)`` to latents ``(N, latent_dim)``."""
        h = self.act(self.linear1(x))
        h = h + self.act(self.linear2(h))
        h = h + self.act(self.linear3(h))
        return self.linear4(h)

    def decode(self, z: Tensor) -> Tensor:
        """Latents ``(N, latent_dim)`` to pixels ``(N, P)``."""
        h = self.act(self.linear5(z))
        h = h + self.act(self.linear6(h))
        h = h + self.act(self.linear7(h))
        return self.linear8(h)


def symplectic_matrix(n: int, canonical: bool = True) -> Tensor:
    """The matrix ``M`` with ``field = dH @ M.T`` (hamiltonian-nn's ``permutation_tensor``).

    Canonical coordinates ``x = (q, p)`` give ``M = [[0, I], [-I, 0]]``, so the field is
    ``(dH/dp, -dH/dq)``; otherwise the reference's Levi-Civita-style sign pattern.
    """
    if canonical:
        eye = torch.eye(n)
        return torch.cat([eye[n // 2 :], -eye[: n // 2]])
    m = torch.ones(n, n) * (1 - torch.eye(n))
    m[::2] *= -1
    m[:, ::2] *= -1
    upper = torch.triu(torch.ones(n, n), diagonal=1).bool()
    return torch.where(upper, -m, m)


def embed_angles(x: Tensor, q_dim: int) -> Tensor:
    """``(..., Q + R) -> (..., 2 Q + R)``: angles ``q`` as ``(cos q, sin q)``, the rest unchanged.

    Symplectic ODE-Net's embedded angle coordinates: a network of the embedding is 2 pi periodic
    in ``q``, so an angle that has wound several turns (an unwrapped pendulum state) is the same
    input as its wrapped value, and derivatives in ``q`` follow by the chain rule.
    """
    q = x[..., :q_dim]
    return torch.cat([torch.cos(q), torch.sin(q), x[..., q_dim:]], -1)


class InputMatrix(nn.Module):
    """Symplectic ODE-Net's input matrix ``g(q)``: ``(N, Q) -> (N, Q, A)``.

    The action enters the momentum equation as the generalised force ``g(q) u``. With
    ``angle_embed`` the network sees ``(cos q, sin q)`` (:func:`embed_angles`).
    """

    def __init__(
        self, q_dim: int, action_dim: int, hidden_dim: int, nonlinearity: str,
        angle_embed: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        self.q_dim, self.action_dim, self.angle_embed = q_dim, action_dim, angle_embed
        inp = 2 * q_dim if angle_embed else q_dim
        self.net = MLP(inp, hidden_dim, q_dim * action_dim, 1, nonlinearity, last_bias=True)

    def forward(self, q: Tensor) -> Tensor:
        """``(N, Q) -> (N, Q, A)``."""
        q = embed_angles(q, self.q_dim) if self.angle_embed else q
        return self.net(q).view(-1, self.q_dim, self.action_dim)


class Dissipation(nn.Module):
    """A positive semi-definite damping matrix ``D(q) = L L^T`` (``(N, Q) -> (N, Q, Q)``).

    Dissipative Symplectic ODE-Net: the momentum loses ``D(q) dH/dp``, so energy only decreases
    without actions. ``angle_embed`` as in :class:`InputMatrix`.
    """

    def __init__(
        self, q_dim: int, hidden_dim: int, nonlinearity: str, angle_embed: bool = False
    ) -> None:
        super().__init__()
        self.q_dim, self.angle_embed = q_dim, angle_embed
        inp = 2 * q_dim if angle_embed else q_dim
        self.net = MLP(inp, hidden_dim, q_dim * q_dim, 1, nonlinearity, last_bias=True)

    def forward(self, q: Tensor) -> Tensor:
        """``(N, Q) -> (N, Q, Q)``."""
        q = embed_angles(q, self.q_dim) if self.angle_embed else q
        low = self.net(q).view(-1, self.q_dim, self.q_dim).tril()
        return low @ low.transpose(1, 2)
