"""LPIPS, the learned perceptual distance (Zhang et al., CVPR 2018), VGG16 variant, frozen.

Features of five VGG16 stages (``relu1_2`` ... ``relu5_3``, torchvision's ``vgg16().features``
layout, indices kept so that its weights load directly) are unit-normalised along channels; the
squared differences are weighted per channel by five 1x1 convolutions (the learned "linear"
heads), averaged over space and summed over stages. The layout of the heads and the input scaling
follow taming-transformers' ``LPIPS``, which IRIS (eloialonso/iris @ 24326aa) and others use.

Nothing is downloaded: :func:`load_lpips` reads a local file or the caches, or returns ``None``
with the reason, so callers can train without the term and say so.

Axis legend: ``N`` images, ``C`` channels, ``H, W`` spatial.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldflux.errors import ModelFileError

#: (in, out) channels of VGG16's 13 convolutions; "M" marks a 2x2 max-pool.
_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
#: End (exclusive) of each stage in ``features``: after relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
_STAGE_ENDS = (4, 9, 16, 23, 30)
CHANNELS = (64, 128, 256, 512, 512)
#: torchvision's file name of the ImageNet VGG16 weights in its hub cache.
VGG16_FILE = "vgg16-397923af.pth"
#: Where IRIS (and taming-transformers) cache the LPIPS heads.
IRIS_HEADS = Path("~/.cache/iris/tokenizer_pretrained_vgg/vgg.pth")


def _vgg16_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    cin = 3
    for v in _VGG16:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU(inplace=False)]
            cin = int(v)
    return nn.Sequential(*layers)


class LPIPS(nn.Module):
    """Frozen LPIPS distance between images in ``[-1, 1]``.

    Args:
        dropout: apply dropout (p=0.5) to the squared feature differences before the heads when
            ``training`` is passed as true (taming's heads carry a dropout layer; IRIS keeps the
            module in training mode while the tokenizer trains).
    """

    shift: Tensor
    scale: Tensor

    def __init__(self, dropout: bool = True) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.features = _vgg16_features()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in CHANNELS)
        self.dropout = dropout
        self.requires_grad_(False)

    def _stages(self, x: Tensor) -> list[Tensor]:
        out, start = [], 0
        x = (x - self.shift) / self.scale
        for end in _STAGE_ENDS:
            for layer in self.features[start:end]:
                x = layer(x)
            out.append(x)
            start = end
        return out

    def forward(self, x: Tensor, y: Tensor, training: bool = False) -> Tensor:
        """Distance ``(N, 1, 1, 1)`` between ``x`` and ``y`` ``(N, 3, H, W)``."""
        total = None
        for lin, fx, fy in zip(self.lins, self._stages(x), self._stages(y), strict=True):
            nx = fx / (fx.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            ny = fy / (fy.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            diff = F.dropout((nx - ny).pow(2), 0.5, training=training and self.dropout)
            term = lin(diff).mean((2, 3), keepdim=True)
            total = term if total is None else total + term
        assert total is not None
        return total

    def load_weights(self, state: dict[str, Tensor], where: str) -> None:
        """Load heads and VGG16 from a state dict in taming's or torchvision's layout.

        Accepted keys: ``lin{i}.model.1.weight`` (taming/IRIS heads), ``lins.{i}.weight`` (ours),
        ``features.{j}.weight|bias`` (torchvision VGG16, also ours), ``net.slice{k}.{j}.*``
        (taming's VGG copy). Missing entries raise :class:`ModelFileError` naming them.
        """
        mapped: dict[str, Tensor] = {}
        for key, value in state.items():
            parts = key.split(".")
            if key.startswith("lin") and parts[0][3:].isdigit() and parts[-1] == "weight":
                mapped[f"lins.{int(parts[0][3:])}.weight"] = value
            elif parts[0] == "net" and parts[1].startswith("slice"):
                mapped[f"features.{parts[2]}.{parts[3]}"] = value
            elif parts[0] in ("features", "lins"):
                mapped[key] = value
        own = {k for k in self.state_dict() if k not in ("shift", "scale")}
        missing = sorted(own - set(mapped))
        if missing:
            raise ModelFileError(
                Path(where), f"LPIPS weights lack {len(missing)} entries, e.g. {missing[:3]}"
            )
        for key in own:
            want = self.state_dict()[key].shape
            if mapped[key].shape != want:
                raise ModelFileError(
                    Path(where),
                    f"LPIPS entry {key} has shape {tuple(mapped[key].shape)}, expected {tuple(want)}",
                )
        self.load_state_dict({k: mapped[k] for k in own}, strict=False)


def _torch_hub_dir() -> Path:
    env = os.environ.get("TORCH_HOME")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "torch"
    return (base / "hub" / "checkpoints").expanduser()


def _read(path: Path) -> dict[str, Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises several types for unreadable files
        raise ModelFileError(path, f"cannot read LPIPS weights ({err})") from None
    if not isinstance(state, dict):
        raise ModelFileError(path, "LPIPS weights must be a state dict")
    return state


def load_lpips(path: str | os.PathLike[str] | None = None) -> tuple[LPIPS | None, str]:
    """A frozen LPIPS with pretrained weights, or ``None``, and a sentence saying what happened.

    Args:
        path: a local file holding the heads (and optionally VGG16). ``None`` looks for IRIS's
            cached heads (``~/.cache/iris/tokenizer_pretrained_vgg/vgg.pth``). VGG16 comes from
            the same file when it has it, else from torchvision's hub cache
            (``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth``).

    Raises:
        ModelFileError: ``path`` was given and is missing, unreadable or incomplete.
    """
    heads = Path(path).expanduser() if path is not None else IRIS_HEADS.expanduser()
    if not heads.is_file():
        if path is not None:
            raise ModelFileError(heads, "LPIPS weight file is missing")
        return None, f"no LPIPS heads at {heads}"
    state = dict(_read(heads))
    if not any(k.startswith(("features.", "net.slice")) for k in state):
        vgg = _torch_hub_dir() / VGG16_FILE
        if not vgg.is_file():
            return None, f"LPIPS heads found at {heads} but no VGG16 weights at {vgg}"
        state.update(_read(vgg))
    model = LPIPS()
    model.load_weights(state, str(heads))
    return model.eval(), f"LPIPS loaded from {heads}"
