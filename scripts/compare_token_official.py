"""Compare worldflux's IRIS (family ``token``) with the official code: same weights, same inputs.

Usage::

    git --git-dir=<mirror of eloialonso/iris> archive 24326aa | tar -x -C /tmp/iris  # or per file
    python3 -m venv --system-site-packages /tmp/irisenv && /tmp/irisenv/bin/pip install einops tqdm psutil
    /tmp/irisenv/bin/python scripts/compare_token_official.py --official /tmp/iris

The official ``src/`` is imported from ``--official``; nothing of it is copied into worldflux.
Modules its model files import but never use on these paths (``gym``, ``cv2``, ``PIL``) are
replaced by empty stand-ins, and ``torchvision.models.vgg16`` (used by its LPIPS) by a standard
VGG16 ``features`` stack built here, since torchvision is not installed; the LPIPS head weights
download is disabled (the LPIPS weights are random on both sides, copied from the official one).

The official agent (tokenizer, world model, actor-critic of ``config/*/default.yaml``, 64x64x3
frames, 4 actions) is built with random weights, perturbed (so that LayerNorm gains, zero biases
and the small codebook are not trivial), saved the way the official trainer saves it
(``torch.save(agent.state_dict(), path)``, the layout of the released ``pretrained_models/*.pt``)
and loaded as a user loads a released agent: ``create_world_model("token:base", weights=path)``
(the action count read from the file). Both are then fed identical inputs and identical random draws (``torch.manual_seed`` before each call;
the two codes draw in the same order). Everything runs in eval mode (no dropout). Prints a table of
max abs differences.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ROWS: list[tuple[str, float, float]] = []


def record(name: str, official: Any, ours: Any) -> None:
    """Add one row: max abs difference and the official value's magnitude."""
    a, b = torch.as_tensor(official).float(), torch.as_tensor(ours).float()
    b = b.reshape(a.shape)
    ROWS.append((name, (a - b).abs().max().item(), a.abs().max().item()))


def _vgg16_stand_in(pretrained: bool = False, **_: Any) -> Any:
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    layers: list[nn.Module] = []
    cin = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU(inplace=True)]
            cin = int(v)
    return types.SimpleNamespace(features=nn.Sequential(*layers))


class _Stub(types.ModuleType):
    """An importable stand-in whose every attribute is an empty class (base classes of the
    environment wrappers the official package defines at import time)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (), {})


def import_official(path: str) -> types.SimpleNamespace:
    """Import the official model classes from ``path`` (the checkout root)."""
    for name in ("gym", "cv2", "PIL", "PIL.Image", "torchvision", "torchvision.transforms"):
        sys.modules.setdefault(name, _Stub(name))
    tv = sys.modules["torchvision"]
    tv.models = types.SimpleNamespace(vgg16=_vgg16_stand_in)  # type: ignore[attr-defined]
    sys.modules["PIL"].Image = sys.modules["PIL.Image"]  # type: ignore[attr-defined]
    sys.path.insert(0, str(Path(path) / "src"))
    from models.actor_critic import ActorCritic
    from models.tokenizer import Decoder, Encoder, EncoderDecoderConfig, Tokenizer
    from models.tokenizer.lpips import LPIPS
    from models.transformer import TransformerConfig
    from models.world_model import WorldModel

    LPIPS.load_from_pretrained = lambda self: None  # no download; random heads on both sides
    return types.SimpleNamespace(
        ActorCritic=ActorCritic, Decoder=Decoder, Encoder=Encoder, Tokenizer=Tokenizer,
        EncoderDecoderConfig=EncoderDecoderConfig, TransformerConfig=TransformerConfig,
        WorldModel=WorldModel,
    )  # fmt: skip


def build_official(off: types.SimpleNamespace, actions: int) -> nn.Module:
    """The official agent's three parts from its default configs."""
    enc = off.EncoderDecoderConfig(
        resolution=64, in_channels=3, z_channels=512, ch=64, ch_mult=[1, 1, 1, 1, 1],
        num_res_blocks=2, attn_resolutions=[8, 16], out_ch=3, dropout=0.0,
    )  # fmt: skip
    tok = off.Tokenizer(512, 512, off.Encoder(enc), off.Decoder(enc), with_lpips=True)
    tcfg = off.TransformerConfig(
        tokens_per_block=17, max_blocks=20, attention="causal", num_layers=10, num_heads=4,
        embed_dim=256, embed_pdrop=0.1, resid_pdrop=0.1, attn_pdrop=0.1,
    )  # fmt: skip
    agent = nn.Module()
    agent.tokenizer = tok
    agent.world_model = off.WorldModel(obs_vocab_size=512, act_vocab_size=actions, config=tcfg)
    agent.actor_critic = off.ActorCritic(act_vocab_size=actions, use_original_obs=False)
    return agent


def perturb(module: nn.Module, gen: torch.Generator) -> None:
    """Add noise to every parameter (LayerNorm gains, zero biases and the codebook included)."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.02)
        # spread the codebook: with IRIS's +-1/512 initialisation every code is nearly equidistant
        # from every feature, and float rounding (which depends on the batch shape) decides ties
        module.tokenizer.embedding.weight.add_(torch.randn(512, 512, generator=gen) * 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--official", required=True, help="root of the eloialonso/iris checkout")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument(
        "--dump-keys", help="also write the official state dict's keys and shapes to this JSON"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    # worldflux (and lightning) first: the stand-ins below must not shadow what they probe for
    from worldflux import create_world_model

    create_world_model("token:ci")  # imports the family and lightning
    off = import_official(args.official)

    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    agent = build_official(off, 4).eval()
    perturb(agent, gen)
    if args.dump_keys:
        dump_keys(agent, args.dump_keys)
    with tempfile.TemporaryDirectory() as tmp:
        # the reference trainer's file (src/trainer.py: torch.save(agent.state_dict(), ...)),
        # loaded the way a user loads a released agent; the action count comes from the file
        path = Path(tmp) / "Breakout.pt"
        torch.save(agent.state_dict(), path)
        ours = create_world_model("token:base", weights=path).eval()
    n_off = {k: sum(p.numel() for p in getattr(agent, k).parameters() if p.requires_grad)
             for k in ("tokenizer", "world_model", "actor_critic")}  # fmt: skip
    print("official trainable parameters:", n_off, "ours:", ours.parameter_breakdown())
    record("actions read from the file", 4, ours.config.action_dim)
    lp = agent.tokenizer.lpips.state_dict()
    from worldflux.nn.lpips import LPIPS

    ours_lpips = LPIPS().eval()
    ours_lpips.load_weights(lp, "official LPIPS")
    ours.set_lpips(ours_lpips)

    b, L = args.batch, 20
    frames = torch.randint(0, 256, (b, L + 1, 3, 64, 64), generator=gen).float() / 255
    actions = torch.randint(0, 4, (b, L + 1), generator=gen)
    rewards = torch.randint(-1, 2, (b, L + 1), generator=gen).float()
    ends = torch.zeros(b, L + 1, dtype=torch.long)
    ends[0, L - 1] = 1  # sample 0 ends at its last step

    with torch.no_grad():
        # ---------------------------------------------------------------- tokenizer
        x = frames[:, 0]
        o = agent.tokenizer.encode(x, should_preprocess=True)
        q = ours.tokenizer.encode(x * 2 - 1)
        record("tokenizer encode z", o.z, q.z)
        record("tokenizer tokens (count differing)", torch.zeros(()), (o.tokens != q.tokens).sum())
        record(
            "tokenizer decode", agent.tokenizer.decode(o.z_quantized), ours.tokenizer.decode(q.z_q)
        )
        batch_tok = {"observations": frames[:, :1]}
        lo = agent.tokenizer.compute_loss(batch_tok)
        lw = ours.tokenizer_loss({"obs": frames[:, :1]})
        ref_terms = _official_terms(agent.tokenizer, frames[:, :1])
        for name, key in (("commitment", "commitment"), ("reconstruction", "reconstruction"),
                          ("perceptual", "perceptual")):  # fmt: skip
            record(f"tokenizer loss {name}", ref_terms[key], lw.components[key])
        record("tokenizer loss total", lo.loss_total, lw.total)

        # ---------------------------------------------------------------- world model
        obs_tokens = agent.tokenizer.encode(frames[:, :L], should_preprocess=True).tokens
        ours_tokens = ours.encode(frames[:, :L])
        record(
            "tokenizer tokens of 40 frames (count differing)", 0, (ours_tokens != obs_tokens).sum()
        )
        seq = torch.cat([obs_tokens, actions[:, :L, None]], -1).flatten(1)
        wo = agent.world_model(seq)
        ww = ours.world_model(seq)
        record("world model obs logits", wo.logits_observations, ww.obs)
        record("world model reward logits", wo.logits_rewards, ww.reward)
        record("world model end logits", wo.logits_ends, ww.end)
        mask = torch.ones(b, L, dtype=torch.bool)
        mask[0, L:] = False
        wb = {"observations": frames[:, :L], "actions": actions[:, :L], "rewards": rewards[:, :L],
              "ends": ends[:, :L], "mask_padding": mask}  # fmt: skip
        ref = _official_wm_terms(agent, wb)
        ob = _our_batch(frames, actions, rewards, ends, L)
        lw = ours.world_model_loss(ob)
        for name, key in (("obs", "obs"), ("reward", "reward"), ("end", "end")):
            record(f"world model loss {name}", ref[key], lw.components[key])
        record("world model loss total", ref["total"], lw.total)

        # ------------------------------------------------ key-value cache, token by token
        kv = agent.world_model.transformer.generate_empty_keys_values(b, 340)
        cache = ours.world_model.new_cache(b)
        worst = 0.0
        for i in range(0, 3 * 17):
            a = agent.world_model(seq[:, i : i + 1], past_keys_values=kv).output_sequence
            c = ours.world_model(seq[:, i : i + 1], cache).features
            worst = max(worst, (a - c).abs().max().item())
        full = ours.world_model(seq[:, : 3 * 17]).features[:, -1]
        ROWS.append(("cached step features (51 steps)", worst, a.abs().max().item()))
        record("ours: cached vs full-sequence features", full, c[:, -1])

    # -------------------------------------------------------------------- actor-critic
    agent.actor_critic.reset(b)
    with torch.no_grad():
        ao = agent.actor_critic(frames[:, 0])
        st = ours.actor_critic.initial_state(b)
        lg, val, _ = ours.actor_critic(frames[:, 0], st)
    record("actor-critic logits", ao.logits_actions[:, 0], lg)
    record("actor-critic value", ao.means_values[:, 0, 0], val)
    agent.actor_critic.clear()
    acb = {"observations": frames, "mask_padding": torch.ones(b, L + 1, dtype=torch.bool)}
    ref = _official_ac_terms(agent, acb)
    torch.manual_seed(1)
    first = torch.zeros(b, L + 1, dtype=torch.bool)
    lw = ours.actor_critic_loss({"obs": frames, "first": first})
    for name in ("actions", "values", "entropy"):
        record(f"actor-critic loss {name}", ref[name], lw.components[name])
    record("actor-critic loss total", ref["total"], lw.total)

    print("\n| quantity | max abs difference | official magnitude |\n|---|---|---|")
    for name, diff, mag in ROWS:
        print(f"| {name} | {diff:.3g} | {mag:.3g} |")


def dump_keys(agent: nn.Module, path: str) -> None:
    """Write the official agent's state-dict keys and shapes (the layout of a released file)."""
    shapes = {k: list(v.shape) for k, v in agent.state_dict().items()}
    source = "eloialonso/iris@24326aa Agent(config/*/default.yaml, 64x64x3, 4 actions).state_dict()"
    Path(path).write_text(json.dumps({"source": source, "shapes": shapes}, indent=0) + "\n")


def _official_terms(tok: nn.Module, obs: Tensor) -> dict[str, Tensor]:
    """The official tokenizer loss terms as tensors (its loss object keeps floats only)."""
    x = tok.preprocess_input(obs.flatten(0, 1))
    z, zq, rec = tok(x)
    return {
        "commitment": (z.detach() - zq).pow(2).mean() + (z - zq.detach()).pow(2).mean(),
        "reconstruction": (x - rec).abs().mean(),
        "perceptual": tok.lpips(x, rec).mean(),
    }


def _official_wm_terms(agent: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    out = agent.world_model.compute_loss(batch, agent.tokenizer)
    names = {"loss_obs": "obs", "loss_rewards": "reward", "loss_ends": "end"}
    terms = {names[k]: torch.tensor(v) for k, v in out.intermediate_losses.items()}
    return {**terms, "total": out.loss_total}


def _official_ac_terms(agent: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    torch.manual_seed(1)
    out = agent.actor_critic.compute_loss(batch, agent.tokenizer, agent.world_model,
                                          imagine_horizon=20, gamma=0.995, lambda_=0.95,
                                          entropy_weight=0.001)  # fmt: skip
    terms = {k.replace("loss_", ""): torch.tensor(v) for k, v in out.intermediate_losses.items()}
    return {**terms, "total": out.loss_total}


def _our_batch(frames: Tensor, actions: Tensor, rewards: Tensor, ends: Tensor, L: int) -> dict:
    """The official world-model batch in worldflux's replay format (action that *led* to a step)."""
    b = frames.shape[0]
    action = torch.zeros(b, L + 1, 4)
    action[:, 1:] = F.one_hot(actions[:, :L], 4).float()
    reward = torch.zeros(b, L + 1)
    reward[:, 1:] = rewards[:, :L]
    terminal = torch.zeros(b, L + 1, dtype=torch.bool)
    terminal[:, 1:] = ends[:, :L].bool()
    first = torch.zeros(b, L + 1, dtype=torch.bool)
    first[:, 0] = True
    return {"obs": frames, "action": action, "reward": reward, "first": first, "terminal": terminal}


if __name__ == "__main__":
    main()
