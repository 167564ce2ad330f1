"""Same weights, same outputs: worldflux jepa:base against vladisai/PLDM @ cbaf674 on CPU.

    python scripts/compare_jepa_official.py /work/ref/pldm

The reference's own modules are imported from the checkout given on the command line (they run
with worldflux's torch): its IMPALA encoder (``pldm/models/encoders/impala.py``), its GRU
predictor (``RNNPredictorV2`` with the encoder's LayerNorm tied in) and its IDM MLP
(``pldm/models/misc.py``); the VICReg terms are the reference's ``VICRegObjective.std_loss`` and
``cov_loss`` (called on a stand-in object because the objective's constructor moves a projector
to CUDA). Our weights are copied into the reference modules, both run on the same batch, and the
table lists the largest absolute difference of every output and loss term.
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
    parser.add_argument("reference", help="path of a vladisai/PLDM checkout (commit cbaf674)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=6)
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
