"""Compare worldflux's V-JEPA 2 with the official code (facebookresearch/vjepa2 @ c2963a4).

Usage::

    python scripts/compare_vjepa2_official.py --ref /path/to/vjepa2   # a checkout at c2963a4

What it checks:

1. parameter counts of the released sizes, both built on the meta device (ViT-L/H/g encoders,
   the AC predictor on ViT-g and ViT-L, the ViT-L pretraining predictor);
2. same weights, same outputs at toy width on the CPU: the official modules are built, their
   state dicts saved in the official checkpoint layout (``module.backbone.`` prefixes) and loaded
   into worldflux through ``weights=`` (:mod:`worldflux.models.vjepa2.checkpoint`); then the
   encoder, the masked encoder path, the masked predictor, the AC predictor and the AC losses
   (teacher forcing + 2-step rollout, written as ``app/vjepa_droid/train.py`` computes them) are
   compared.

The official modules import ``einops`` and ``timm`` at module level without using them in the
paths compared here (``rearrange`` is never called; ``drop_path`` only runs with a drop-path rate
above 0); when those packages are missing this script installs stand-ins for the two names so
that no extra dependency is needed. Nothing else of the reference is replaced.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import types
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from worldflux import create_world_model
from worldflux.models.vjepa2.module import l1_loss


def import_reference(root: Path) -> types.SimpleNamespace:
    """The official modules, with stand-ins for the unused ``einops`` / ``timm`` imports."""
    try:
        import einops  # noqa: F401
    except ImportError:
        sys.modules["einops"] = types.SimpleNamespace(rearrange=None)  # type: ignore[assignment]
    try:
        import timm  # noqa: F401
    except ImportError:

        def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
            if p > 0 and training:
                raise RuntimeError("stand-in drop_path: drop-path rate must be 0 here")
            return x

        layers = types.ModuleType("timm.models.layers")
        layers.drop_path = drop_path  # type: ignore[attr-defined]
        for name, mod in (
            ("timm", types.ModuleType("timm")),
            ("timm.models", types.ModuleType("timm.models")),
            ("timm.models.layers", layers),
        ):
            sys.modules.setdefault(name, mod)
    sys.path.insert(0, str(root))
    import src.models.ac_predictor as ac
    import src.models.predictor as pred
    import src.models.vision_transformer as vit

    return types.SimpleNamespace(vit=vit, pred=pred, ac=ac)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def compare_counts(ref: types.SimpleNamespace) -> list[tuple[str, int, int]]:
    rows = []
    linspace = torch.linspace
    # the reference reads its drop-path schedule with .item(), which meta tensors refuse
    torch.linspace = partial(linspace, device="cpu")  # type: ignore[assignment]
    with torch.device("meta"):
        common = dict(img_size=256, num_frames=64, use_rope=True, uniform_power=True)
        encs = {
            "ViT-L/16": ref.vit.vit_large(**common),
            "ViT-H/16": ref.vit.vit_huge(**common),
            "ViT-g/16": ref.vit.vit_giant_xformers(**common),
        }
        ac_g = ref.ac.vit_ac_predictor(
            img_size=256, num_frames=16, embed_dim=1408, predictor_embed_dim=1024, depth=24,
            num_heads=16, action_embed_dim=7, use_rope=True, is_frame_causal=False,
        )  # fmt: skip
        ac_l = ref.ac.vit_ac_predictor(
            img_size=256, num_frames=16, embed_dim=1024, predictor_embed_dim=1024, depth=24,
            num_heads=16, action_embed_dim=7, use_rope=True, is_frame_causal=False,
        )  # fmt: skip
        mp = ref.pred.vit_predictor(
            img_size=256, num_frames=16, embed_dim=1024, predictor_embed_dim=384, depth=12,
            num_heads=12, use_mask_tokens=True, num_mask_tokens=6, use_rope=True,
        )  # fmt: skip
    torch.linspace = linspace  # type: ignore[assignment]
    ours = {
        "base": create_world_model("vjepa2:base", device="meta"),
        "large": create_world_model("vjepa2:large", device="meta"),
        "pretrain_large": create_world_model("vjepa2:pretrain_large", device="meta"),
    }
    huge = create_world_model(
        "vjepa2:large", device="meta", enc_dim=1280, enc_depth=32, enc_heads=16, enc_mlp_dim=5120
    )
    rows.append(("encoder ViT-L/16", count(encs["ViT-L/16"]), count(ours["large"].encoder)))
    rows.append(("encoder ViT-H/16", count(encs["ViT-H/16"]), count(huge.encoder)))
    rows.append(("encoder ViT-g/16", count(encs["ViT-g/16"]), count(ours["base"].encoder)))
    rows.append(("AC predictor (ViT-g, base)", count(ac_g), count(ours["base"].predictor)))
    rows.append(("AC predictor (ViT-L, large)", count(ac_l), count(ours["large"].predictor)))
    rows.append(("masked predictor (ViT-L)", count(mp), count(ours["pretrain_large"].predictor)))
    return rows


def _save_official(path: Path, enc: nn.Module, predictor: nn.Module) -> None:
    pre = "module.backbone."
    state = {pre + k: v for k, v in enc.state_dict().items()}
    torch.save(
        {
            "encoder": state,
            "target_encoder": state,
            "predictor": {pre + k: v for k, v in predictor.state_dict().items()},
        },
        path,
    )


def compare_outputs(ref: types.SimpleNamespace, tmp: Path) -> list[tuple[str, float]]:
    torch.manual_seed(0)
    ln = partial(nn.LayerNorm, eps=1e-6)
    tiny = dict(img_size=16, patch_size=4, tubelet_size=2, use_rope=True)
    enc = ref.vit.VisionTransformer(
        num_frames=4, embed_dim=24, depth=2, num_heads=2, mlp_ratio=2.0, norm_layer=ln, qkv_bias=True,
        uniform_power=True, **tiny,
    ).eval()  # fmt: skip
    acp = ref.ac.vit_ac_predictor(
        num_frames=8, embed_dim=24, predictor_embed_dim=24, depth=2, num_heads=2,
        action_embed_dim=2, is_frame_causal=True, **tiny,
    ).eval()  # fmt: skip
    mp = ref.pred.vit_predictor(
        num_frames=4, embed_dim=24, predictor_embed_dim=24, depth=1, num_heads=2,
        use_mask_tokens=True, num_mask_tokens=1, zero_init_mask_tokens=False, **tiny,
    ).eval()  # fmt: skip
    _save_official(tmp / "ac.pt", enc, acp)
    _save_official(tmp / "pre.pt", enc, mp)
    # the official predictor builders fix mlp_ratio=4; its rotary code needs head widths >= 12
    ours = create_world_model("vjepa2:ci", weights=str(tmp / "ac.pt"), pred_mlp_dim=96).eval()
    pre = create_world_model(
        "vjepa2:pretrain_ci", weights=str(tmp / "pre.pt"), pred_dim=24, pred_mlp_dim=96
    ).eval()
    out: list[tuple[str, float]] = []

    def diff(name: str, a: torch.Tensor, b: torch.Tensor) -> None:
        out.append((name, float((a - b).abs().max())))

    with torch.no_grad():
        video = torch.randn(2, 3, 4, 16, 16)
        diff("encoder, 4-frame clip", enc(video), ours.encoder(video))
        keep = torch.stack([torch.randperm(32)[:20].sort().values for _ in range(2)])
        target = torch.stack([torch.tensor(sorted(set(range(32)) - set(k.tolist()))) for k in keep])
        z_ref = enc(video, masks=[keep])
        diff("encoder, masked context", z_ref, pre.encoder(video, keep))
        p_ref = mp(z_ref, [keep], [target], mask_index=0)
        diff("masked predictor", p_ref, pre.predictor(z_ref, keep, target, (2, 4, 4), 0))

        frames, t = torch.randn(2, 3 * 16, 24), 3
        actions, states = torch.randn(2, t, 2), torch.randn(2, t, 2)
        diff("AC predictor", acp(frames, actions, states), ours.predictor(frames, actions, states))

        # the AC losses as app/vjepa_droid/train.py computes them (zero states, as ours)
        clips = torch.randint(0, 256, (2, 4, 3, 16, 16), dtype=torch.uint8)
        act = torch.rand(2, 4, 2) * 2 - 1
        px = ours._pixels(clips, 2)  # (B, T, C, H, W), normalised like the reference's transform
        c = px.permute(0, 2, 1, 3, 4)  # [B C T H W], the reference's clip layout
        c = c.permute(0, 2, 1, 3, 4).flatten(0, 1).unsqueeze(2).repeat(1, 1, 2, 1, 1)
        h = enc(c).view(2, 4, -1, 24).flatten(1, 2)
        h = F.layer_norm(h, (24,))
        a, s, tpf = act[:, 1:], torch.zeros(2, 4, 2), 16

        def step(z: torch.Tensor, a_: torch.Tensor, s_: torch.Tensor) -> torch.Tensor:
            return F.layer_norm(acp(z, a_, s_), (24,))

        z_tf = step(h[:, :-tpf], a, s[:, :-1])
        z = torch.cat([h[:, :tpf], z_tf[:, :tpf]], 1)
        z = torch.cat([z, step(z, a[:, :2], s[:, :2])[:, -tpf:]], 1)
        jloss = l1_loss(z_tf, h[:, tpf : z_tf.shape[1] + tpf], 1.0)
        sloss = l1_loss(z[:, tpf:], h[:, tpf : z.shape[1]], 1.0)
        mine = ours.loss({"obs": clips, "action": act})
        diff("AC loss: teacher forcing", jloss, mine.components["teacher_forcing"])
        diff("AC loss: 2-step rollout", sloss, mine.components["rollout"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ref", type=Path, required=True, help="facebookresearch/vjepa2 checkout")
    parser.add_argument("--skip-counts", action="store_true", help="only the output comparison")
    args = parser.parse_args()
    ref = import_reference(args.ref)
    if not args.skip_counts:
        print("| module | official | worldflux | equal |\n|---|---|---|---|")
        for name, theirs, mine in compare_counts(ref):
            print(f"| {name} | {theirs:,} | {mine:,} | {'yes' if theirs == mine else 'NO'} |")
    with tempfile.TemporaryDirectory() as tmp:
        rows = compare_outputs(ref, Path(tmp))
    print("\n| same weights, same input | max abs difference |\n|---|---|")
    for name, d in rows:
        print(f"| {name} | {d:.2e} |")
    worst = max(d for _, d in rows)
    if worst > 1e-5:
        raise SystemExit(f"outputs differ by up to {worst:.2e}")


if __name__ == "__main__":
    main()
