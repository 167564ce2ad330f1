"""Same weights, same outputs: worldflux jepa against PLDM and DINO-WM's reference code on CPU.

    python scripts/compare_jepa_official.py /work/ref/pldm                 # jepa:base
    python scripts/compare_jepa_official.py --dino-wm /work/ref/dino_wm    # jepa:dino_wm

jepa:base (PLDM, vladisai/PLDM @ cbaf674):
The reference's own modules are imported from the checkout given on the command line (they run
with worldflux's torch): its IMPALA encoder (``pldm/models/encoders/impala.py``), its GRU
predictor (``RNNPredictorV2`` with the encoder's LayerNorm tied in) and its IDM MLP
(``pldm/models/misc.py``); the VICReg terms are the reference's ``VICRegObjective.std_loss`` and
``cov_loss`` (called on a stand-in object because the objective's constructor moves a projector
to CUDA). Our weights are copied into the reference modules, both run on the same batch, and the
table lists the largest absolute difference of every output and loss term.

jepa:dino_wm (DINO-WM, gaoyuezhou/dino_wm @ 0a9492f): see :func:`compare_dino_wm`: the
reference's modules are saved as its trainer saves a checkpoint (pickled modules), converted
with ``python -m worldflux.models.jepa.convert_dino_wm`` and loaded through ``weights=``; then
the reference's ``VWorldModel`` and ours run the same batch.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import types
from types import SimpleNamespace

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "reference", nargs="?", help="path of a vladisai/PLDM checkout (commit cbaf674)"
    )
    parser.add_argument("--dino-wm", help="path of a gaoyuezhou/dino_wm checkout (0a9492f)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=6)
    args = parser.parse_args()
    if args.dino_wm:
        compare_dino_wm(args.dino_wm, batch=min(args.batch, 2))
        return
    if not args.reference:
        parser.error("give a PLDM checkout, or --dino-wm <dino_wm checkout>")
    sys.path.insert(0, args.reference)
    # pldm/models/jepa.py does not import on Python >= 3.11 (a dataclass default that is a
    # dataclass instance); the objectives only need its ForwardResult name for type hints.
    stub = types.ModuleType("pldm.models.jepa")
    stub.ForwardResult = tuple  # type: ignore[attr-defined]
    sys.modules["pldm.models.jepa"] = stub
    from pldm.models.encoders.impala import ImpalaEncoder  # type: ignore[import-not-found]
    from pldm.models.enums import PredictorConfig  # type: ignore[import-not-found]
    from pldm.models.misc import MLP  # type: ignore[import-not-found]
    from pldm.models.predictors import RNNPredictorV2  # type: ignore[import-not-found]

    # pldm/objectives/__init__.py has the same Python 3.11 problem: load vicreg.py on its own
    spec = importlib.util.spec_from_file_location(
        "pldm_vicreg", f"{args.reference}/pldm/objectives/vicreg.py"
    )
    assert spec is not None and spec.loader is not None
    vicreg = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vicreg)
    VICRegObjective = vicreg.VICRegObjective  # noqa: N806 - the reference's class name

    from worldflux import create_world_model

    torch.manual_seed(0)
    ours = create_world_model("jepa:base").eval()
    c = ours.config
    ref_enc = ImpalaEncoder(final_ln=True)
    # stage i: conv, pool, blocks -> the reference's stack_blocks[i]: initial_conv, blocks
    mapping = {}
    for i in range(3):
        mapping[f"stages.{i}.conv"] = f"stack_blocks.{i}.initial_conv"
        for j in range(2):
            for k in (1, 2):
                mapping[f"stages.{i}.blocks.{j}.conv{k}"] = f"stack_blocks.{i}.blocks.{j}.conv{k}"
    mapping.update({"proj": "mlp", "norm": "final_ln"})
    state = {}
    for key, value in ours.encoder.state_dict().items():
        module, leaf = key.rsplit(".", 1)
        state[f"{mapping[module]}.{leaf}"] = value
    ref_enc.load_state_dict(state)
    pcfg = PredictorConfig(predictor_arch="rnnV2", predictor_ln=True, tie_backbone_ln=True)
    ref_pred = RNNPredictorV2(
        config=pcfg, hidden_size=512, input_size=2, action_dim=2, backbone_ln=ref_enc.final_ln
    )
    ref_pred.rnn.load_state_dict(ours.predictor.rnn.state_dict())
    ref_idm = MLP(arch="512", input_dim=1024, output_shape=2)
    ref_idm.mlp.load_state_dict(ours.idm.mlp.state_dict())

    b, t = args.batch, args.length
    gen = torch.Generator().manual_seed(1)
    obs = torch.randint(0, 256, (b, t, 2, 65, 65), dtype=torch.uint8, generator=gen)
    action = torch.rand(b, t, 2, generator=gen) * 2 - 1
    first = torch.zeros(b, t, dtype=torch.bool)
    first[:, 0] = True
    with torch.no_grad():
        out = ours.loss({"obs": obs, "action": action, "first": first})
        enc = ours.encode(obs)
        # reference: time-major, images in [0, 1], actions of steps 1..T-1
        x = obs.transpose(0, 1).float() / 255.0
        r_enc = ref_enc.forward_multiple(x).encodings
        r_pred = ref_pred.forward_multiple(r_enc, action.transpose(0, 1)[1:], t - 1).predictions
        vic = SimpleNamespace(
            config=SimpleNamespace(
                std_coeff=c.std_coeff,
                std_coeff_t=c.std_coeff_t,
                std_margin=c.std_margin,
                std_margin_t=c.std_margin_t,
                cov_coeff=c.cov_coeff,
                cov_coeff_t=0.0,
                adjust_cov=True,
            )
        )
        r_terms = {
            "sim": c.sim_coeff * (r_enc[1:] - r_pred[1:]).pow(2).mean(),
            "std": c.std_coeff * VICRegObjective.std_loss(vic, r_enc[:1]).mean(),
            "cov": c.cov_coeff * VICRegObjective.cov_loss(vic, r_enc[:1]).mean(),
            "std_t": c.std_coeff_t
            * VICRegObjective.std_loss(vic, r_enc[1:].permute(1, 0, 2), across_time=True).mean(),
            "sim_t": c.sim_coeff_t * (r_enc[1:] - r_enc[:-1]).pow(2).mean(),
            "idm": c.idm_coeff
            * (
                ref_idm(torch.cat([r_enc[:-1], r_enc[1:]], -1).flatten(0, 1))
                - action.transpose(0, 1)[1:].flatten(0, 1)
            )
            .pow(2)
            .mean(),
        }
        z, ours_pred = enc[:, 0], [enc[:, 0]]
        for i in range(1, t):
            z = ours.transition(z, action[:, i])
            ours_pred.append(z)
        pred = torch.stack(ours_pred, 1)
    print(f"jepa:base vs vladisai/PLDM @ cbaf674, batch {b} x {t}, same weights, CPU float32")
    print("| quantity | worldflux | reference | max abs diff |")
    print("|---|---|---|---|")
    rows = [
        ("encodings (B, T, 512)", enc, r_enc.transpose(0, 1)),
        ("predictions (B, T, 512)", pred, r_pred.transpose(0, 1)),
    ]
    for name, a, r in rows:
        print(f"| {name} | mean {a.mean():.6f} | mean {r.mean():.6f} | {(a - r).abs().max():.2e} |")
    for k, v in r_terms.items():
        a = out.components[k]
        print(f"| loss {k} | {a.item():.6f} | {v.item():.6f} | {(a - v).abs().item():.2e} |")


class _CpuMask:
    """Stand-in for the mask tensor that ``models/vit.py`` moves to CUDA in ``Attention``."""

    def __init__(self, mask: torch.Tensor) -> None:
        self.mask = mask

    def to(self, *args: object, **kwargs: object) -> torch.Tensor:
        return self.mask


class _SharedEncoder(torch.nn.Module):
    """The reference ``VWorldModel``'s encoder slot filled with our (same-weights) DINOv2."""

    def __init__(self, dinov2: torch.nn.Module) -> None:
        super().__init__()
        self.dinov2, self.name = dinov2, "shared_backbone"  # no "dino": no Resize
        self.emb_dim, self.patch_size, self.latent_ndim = dinov2.embed_dim, 14, 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dinov2(x)


def compare_dino_wm(reference: str, batch: int = 2) -> None:
    """jepa:dino_wm against the reference's ``VWorldModel`` with the same weights (PushT sizes).

    The reference modules (``ViTPredictor``, ``ProprioceptiveEmbedding`` x 2, ``VQVAE`` with
    ``quantize=False``) are built with the PushT config and the reference's own random
    initialisation, pickled into a ``model_latest.pth`` as ``train.py`` does, converted and
    loaded into ``jepa:dino_wm`` through ``weights=``. DINOv2 is random and shared: the
    reference's ``DinoV2Encoder`` calls ``torch.hub.load`` (network), so its slot holds our
    backbone; torchvision (absent here) only provides the 224 -> 196 resize, which the stand-in
    does with ``F.interpolate(bilinear, antialias=True)`` (what ``transforms.Resize`` does to
    tensors), the same call ours makes.
    """
    import tempfile
    from pathlib import Path

    import torch.nn.functional as F

    sys.path.insert(0, reference)
    tv = types.ModuleType("torchvision")  # visual_world_model.py imports transforms
    tv.transforms = types.ModuleType("torchvision.transforms")  # type: ignore[attr-defined]
    had = sys.modules.get("torchvision")
    sys.modules["torchvision"] = tv
    import models.vit as vit  # type: ignore[import-not-found]

    mask_fn = vit.generate_mask_matrix
    vit.generate_mask_matrix = lambda p, w: _CpuMask(mask_fn(p, w))
    from models.proprio import ProprioceptiveEmbedding  # type: ignore[import-not-found]
    from models.visual_world_model import VWorldModel  # type: ignore[import-not-found]

    # drop the stand-in again: lightning/torchmetrics probe for the real torchvision
    del sys.modules["torchvision"]
    if had is not None:
        sys.modules["torchvision"] = had
    from models.vqvae import VQVAE  # type: ignore[import-not-found]

    from worldflux import create_world_model
    from worldflux.models.jepa.convert_dino_wm import main as convert

    torch.manual_seed(0)
    predictor = vit.ViTPredictor(
        num_patches=196, num_frames=3, dim=404, depth=6, heads=16, mlp_dim=2048,
        dropout=0.1, emb_dropout=0.0, pool="mean",
    )  # fmt: skip
    proprio_enc = ProprioceptiveEmbedding(num_frames=3, in_chans=4, emb_dim=10)
    action_enc = ProprioceptiveEmbedding(num_frames=3, in_chans=10, emb_dim=10)
    decoder = VQVAE(channel=384, n_embed=2048, n_res_block=4, n_res_channel=128, emb_dim=384,
                    quantize=False)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        pickled, converted = Path(tmp) / "model_latest.pth", Path(tmp) / "dino_wm.pt"
        ckpt = {"epoch": 1, "predictor": predictor, "decoder": decoder,
                "action_encoder": action_enc, "proprio_encoder": proprio_enc}  # fmt: skip
        torch.save(ckpt, pickled)
        convert([str(pickled), str(converted), "--reference", reference])
        ours = create_world_model("jepa:dino_wm", weights=str(converted)).eval()
    shared = _SharedEncoder(ours.encoder)
    ref = VWorldModel(
        image_size=224, num_hist=3, num_pred=1, encoder=shared, proprio_encoder=proprio_enc,
        action_encoder=action_enc, decoder=decoder, predictor=predictor, proprio_dim=10,
        action_dim=10, concat_dim=1, num_action_repeat=1, num_proprio_repeat=1,
        train_encoder=False, train_predictor=True, train_decoder=True,
    )  # fmt: skip
    ref.eval()  # (its eval() returns None)
    ref.encoder_transform = lambda x: F.interpolate(
        x, size=(196, 196), mode="bilinear", antialias=True
    )

    gen = torch.Generator().manual_seed(1)
    b, t = batch, 4
    visual = torch.randint(0, 256, (b, t, 3, 224, 224), dtype=torch.uint8, generator=gen)
    proprio = torch.randn(b, t, 4, generator=gen)
    action = torch.rand(b, t, 10, generator=gen) * 2 - 1  # ours: action[t] led to frame t
    with torch.no_grad():
        batch_in = {"obs": {"visual": visual, "proprio": proprio}, "action": action}
        out = ours.phase_loss("model", batch_in, {})  # what ours.loss adds up, with its parts
        dec = ours.phase_loss("decoder", batch_in, {"model": out})
        tokens = out.outputs["tokens"]
        pred = ours.predictor(tokens[:, :3])
        # the reference: images in [-1, 1] (its dataset transform), action[t] taken at frame t
        r_obs = {"visual": visual.float() / 255.0 * 2 - 1, "proprio": proprio}
        r_act = torch.cat([action[:, 1:], torch.zeros(b, 1, 10)], 1)
        r_tokens = ref.encode(r_obs, r_act)
        r_pred = ref.predict(r_tokens[:, :3])
        _, _, _, r_loss, r_parts = ref(r_obs, r_act)
    print(f"jepa:dino_wm vs gaoyuezhou/dino_wm @ 0a9492f, batch {b} x {t}, PushT sizes, same")
    print("weights (the reference's, through a converted checkpoint), CPU float32")
    print("| quantity | worldflux | reference | max abs diff |")
    print("|---|---|---|---|")
    for name, a, r in (
        ("tokens (B, 4, 196, 404)", tokens, r_tokens),
        ("predictions (B, 3, 196, 404)", pred, r_pred),
    ):
        print(f"| {name} | mean {a.mean():.6f} | mean {r.mean():.6f} | {(a - r).abs().max():.2e} |")
    pairs = (
        ("z loss", out.components["z"], r_parts["z_loss"]),
        ("z visual", out.metrics["z_visual"], r_parts["z_visual_loss"]),
        ("z proprio", out.metrics["z_proprio"], r_parts["z_proprio_loss"]),
        ("decoder recon (encodings)", dec.components["decoder_recon"],
         r_parts["decoder_recon_loss_reconstructed"]),
        ("total", out.total + dec.total, r_loss),
    )  # fmt: skip
    for name, a, r in pairs:
        a, r = float(a), float(r)
        print(f"| loss {name} | {a:.6f} | {r:.6f} | {abs(a - r):.2e} |")


if __name__ == "__main__":
    main()
