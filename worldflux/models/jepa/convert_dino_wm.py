"""Convert a released DINO-WM checkpoint (pickled modules) into plain state dicts, once.

    python -m worldflux.models.jepa.convert_dino_wm --reference /path/to/dino_wm \\
        pusht/checkpoints/model_latest.pth dino_wm_pusht.pt

DINO-WM (gaoyuezhou/dino_wm @ 0a9492f, ``train.py`` ``save_ckpt``) saves its world model as a dict
of whole pickled ``nn.Module`` objects. Unpickling them runs code that the file names (the
reference's ``models.vit``, ``models.proprio``, ``models.vqvae`` classes), so worldflux's loader
refuses such files; this converter is the one place that unpickles one, on request, with the
reference checkout on the import path (``--reference``), and it should only be given files from
a source you trust. It writes ``{module name: module.state_dict()}`` (tensors only), which
``create_world_model("jepa:dino_wm", weights=<out>)`` reads with ``torch.load(weights_only=True)``
(:mod:`worldflux.models.jepa.dino_checkpoint` maps the key layout).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

#: The modules DINO-WM's checkpoints hold (``_keys_to_save`` without ``epoch`` and optimisers).
MODULES = ("encoder", "predictor", "decoder", "action_encoder", "proprio_encoder")


def convert(checkpoint: Any) -> dict[str, dict[str, torch.Tensor]]:
    """``{name: state dict}`` of the modules in an unpickled DINO-WM checkpoint dict."""
    out: dict[str, dict[str, torch.Tensor]] = {}
    for name in MODULES:
        module = checkpoint.get(name)
        if isinstance(module, torch.nn.Module):
            out[name] = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    if "predictor" not in out:
        raise ValueError(
            f"no DINO-WM predictor module in the checkpoint (keys: {sorted(checkpoint)})"
        )
    return out


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="DINO-WM's model_latest.pth (or model_N)")
    parser.add_argument("out", type=Path, help="output file (.pt, weights-only loadable)")
    parser.add_argument(
        "--reference",
        type=Path,
        required=True,
        help="a gaoyuezhou/dino_wm checkout: its classes are needed to unpickle the modules",
    )
    args = parser.parse_args(argv)
    sys.path.insert(0, str(args.reference.resolve()))
    # a trusted file by the user's choice (documented above): it pickles whole modules
    data = torch.load(str(args.checkpoint), map_location="cpu", weights_only=False)
    state = convert(data)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, str(args.out))
    sizes = {k: sum(v.numel() for v in s.values()) for k, s in state.items()}
    print(f"wrote {args.out}: " + ", ".join(f"{k} {n:,}" for k, n in sizes.items()))


if __name__ == "__main__":
    main()
