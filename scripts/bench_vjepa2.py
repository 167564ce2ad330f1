"""Speed of V-JEPA 2: CEM plan time per environment step and the SDPA attention path.

Usage::

    python scripts/bench_vjepa2.py                      # vjepa2:ci on the CPU
    python scripts/bench_vjepa2.py --preset vjepa2:base --device cuda --bf16

Prints a table: seconds per CEM plan (one environment step), per AC training loss + backward,
and which SDPA kernels the attention can use on the device (flash and memory-efficient kernels
need CUDA; a boolean mask, as in the frame-causal predictor, rules out flash).
"""

from __future__ import annotations

import argparse
import time

import torch

from worldflux import create_world_model


def timed(fn, repeats: int, device: str) -> float:  # noqa: ANN001
    fn()  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def kernels(device: str, dtype: torch.dtype) -> dict[str, bool]:
    """Which SDPA backends run a (masked, unmasked) attention of this model's shape."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q = torch.randn(2, 4, 64, 32, device=device, dtype=dtype)
    mask = torch.ones(64, 64, dtype=torch.bool, device=device).tril()
    out = {}
    for name, backend in (
        ("flash", SDPBackend.FLASH_ATTENTION),
        ("memory-efficient", SDPBackend.EFFICIENT_ATTENTION),
        ("math", SDPBackend.MATH),
    ):
        for label, m in (("no mask", None), ("frame-causal mask", mask)):
            try:
                with sdpa_kernel([backend]):
                    torch.nn.functional.scaled_dot_product_attention(q, q, q, attn_mask=m)
                out[f"{name}, {label}"] = True
            except RuntimeError:
                out[f"{name}, {label}"] = False
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="vjepa2:ci")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_world_model(args.preset, device=args.device).eval()
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    model = model.to(dtype)
    c = model.config
    shape = tuple(c.obs_shape)
    obs = torch.randint(0, 256, (1, *shape), dtype=torch.uint8, device=args.device)
    goal = torch.randint(0, 256, (1, *shape), dtype=torch.uint8, device=args.device)
    plan = timed(lambda: model.act(obs, goal=goal, eval_mode=True), args.repeats, args.device)
    batch = {
        "obs": torch.randint(0, 256, (c.batch_size, 4, *shape), dtype=torch.uint8,
                             device=args.device),
        "action": torch.rand(c.batch_size, 4, c.action_dim, device=args.device),
    }  # fmt: skip
    model.train()

    def update() -> None:
        model.zero_grad(set_to_none=True)
        model.loss(batch).total.backward()

    step = timed(update, args.repeats, args.device)
    p = c.planner
    print(f"| {args.preset} on {args.device} ({dtype}) | seconds |\n|---|---|")
    print(
        f"| CEM plan per env step ({p['num_samples']} samples, top {p['num_elites']}, "
        f"{p['iterations']} iterations, horizon {p['horizon']}) | {plan:.3f} |"
    )
    print(f"| AC loss + backward, batch {c.batch_size} x 4 frames | {step:.3f} |")
    print("\n| SDPA backend | usable |\n|---|---|")
    for name, ok in kernels(args.device, dtype).items():
        print(f"| {name} | {'yes' if ok else 'no'} |")


if __name__ == "__main__":
    main()
