"""Speed of R2I's S5 core: parallel scan vs step-by-step recurrence, and one training update.

    python scripts/bench_ssm.py                        # scan table, lengths 256..4096
    python scripts/bench_ssm.py --update ssm:ci --batch 4 --length 1024
    python scripts/bench_ssm.py --versus-official /work/ref/Recall2Imagine \
        --jax-python /work/refenv/r2i/bin/python --batch 4 --length 1024

The scan table times one S5 stack (``--units``, ``--state``, ``--layers``; default the ``mmaze``
widths 1024 / 512 / 5 with batch 1) forward over ``T`` steps with the associative scan and with
the one-step recurrence the imagination uses, and prints the scan's depth (``ceil(log2 T)``
combine levels) next to its time. ``--update`` times full training updates (model, actor and
critic phases) of a preset on random data of ``batch x length``. ``--versus-official`` times,
in one run on the same CPU (one thread each, the official code jitted, compilation excluded), the
official JAX code (chandar-lab/Recall2Imagine @ 6e317e7, run with ``--jax-python``) and ours on
``batch x length``: forward + backward of the S5 stack at the ``mmaze`` widths, and one
world-model update (loss, gradients, optimiser step) at the ``popgym`` widths (``ssm:popgym``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np


def _time(fn, repeat: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def scan_table(
    units: int, state: int, layers: int, batch: int, lengths: list[int], max_recurrence: int
) -> None:
    """Print time per forward of the scan and of the recurrence for each length."""
    import torch

    from worldflux.models.ssm.s5 import S5Stack

    torch.manual_seed(0)
    stack = S5Stack(units, state, layers, blocks=8 if state % 8 == 0 else 1)
    print(
        f"S5 stack: units {units}, state {state}, layers {layers}, batch {batch}, "
        f"{torch.get_num_threads()} threads"
    )
    print("| T | scan depth | scan ms | scan us/step | recurrence ms | speed-up |")
    print("|---|---|---|---|---|---|")
    for t in lengths:
        u = torch.randn(batch, t, units)
        x0 = torch.zeros(batch, layers, state, dtype=torch.complex64)
        reset = torch.zeros(batch, t)
        with torch.no_grad():
            scan = _time(lambda u=u, x0=x0, reset=reset: stack(u, x0, reset, x0), 3)

            def loop(u: torch.Tensor = u, h: torch.Tensor = x0, t: int = t) -> None:
                for i in range(t):
                    _, h = stack.step(u[:, i], h)

            rec = _time(loop, 1) if t <= max_recurrence else float("nan")
        loop_cols = "(skipped) | " if math.isnan(rec) else f"{rec * 1e3:.1f} | {rec / scan:.1f}x"
        print(
            f"| {t} | {math.ceil(math.log2(t))} | {scan * 1e3:.1f} | {scan / t * 1e6:.1f} | "
            f"{loop_cols} |"
        )


def update_time(preset: str, batch: int, length: int, repeat: int) -> None:
    """Print seconds per training update of ``preset`` on random ``batch x length`` data."""
    import torch
    import torch.nn.functional as F

    from worldflux import create_world_model

    model = create_world_model(preset, batch_size=batch, batch_length=length)
    c = model.config
    shape = (batch, length, *c.obs_shape)
    image = len(c.obs_shape) == 3
    obs = torch.randint(0, 256, shape, dtype=torch.uint8) if image else torch.randn(shape)
    first = torch.zeros(batch, length, dtype=torch.bool)
    first[:, 0] = True
    data = {
        "obs": obs,
        "action": F.one_hot(torch.randint(0, c.action_dim, (batch, length)), c.action_dim).float(),
        "reward": torch.randn(batch, length),
        "first": first,
        "terminal": torch.zeros(batch, length, dtype=torch.bool),
    }
    opts = model.configure_optimizers()
    names = [p.name for p in model.schedule.phases]
    seconds = _time(lambda: model.run_update(dict.fromkeys(names, data), opts), repeat)
    print(
        f"{preset}: {model.num_parameters():,} params, batch {batch} x {length}: "
        f"{seconds:.2f} s per update ({torch.get_num_threads()} threads)"
    )


def official_times(official: str, batch: int, length: int, repeat: int) -> dict[str, float]:
    """Seconds of the official S5 stack forward + backward and world-model update (JAX)."""
    import jax
    import jax.numpy as jnp

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from ssm_official_wm import official_world_model

    wm, nj = official_world_model(official, {})  # defaults + popgym = ssm:popgym
    from recall2imagine.ssm.common import SequenceBlock, batchwise
    from recall2imagine.ssm.mimo import MIMOLayer

    def timed(fn, *args):
        jax.block_until_ready(fn(*args))  # compile
        start = time.perf_counter()
        for _ in range(repeat):
            jax.block_until_ready(fn(*args))
        return (time.perf_counter() - start) / repeat

    layer = dict(H=1024, P=512, n_blocks=8, C_init="trunc_standard_normal",
                 discretization="bilinear", dt_min=0.001, dt_max=0.1, conj_sym=False,
                 clip_eigs=False, parallel=True, reset_mode="init")  # fmt: skip
    block = batchwise(SequenceBlock)(layer_cls=MIMOLayer, layer=layer, dropout=0.0, d_model=1024,
                                     n_layers=5, use_norm=True, prenorm=False, mlp=True, glu=True)  # fmt: skip
    u = jnp.ones((batch, length, 1024)) * 0.1
    dones, x0 = jnp.zeros((batch, length)), jnp.zeros((batch, 5, 512), jnp.complex64)
    params = block.init(jax.random.PRNGKey(0), (u[:, :8], dones[:, :8]), x0, x0)
    grad = jax.jit(jax.grad(lambda p, u: jnp.sum(block.apply(p, (u, dones), x0, x0)[0][0])))
    out = {"s5_stack_fwd_bwd": timed(grad, params, u)}
    rng = np.random.default_rng(0)

    def data(t: int) -> dict:
        eye = np.eye(4, dtype=np.float32)
        first = np.zeros((batch, t), bool)
        first[:, 0] = True
        return {"observation": eye[rng.integers(0, 4, (batch, t))], "is_first": first,
                "reward": rng.normal(size=(batch, t)).astype(np.float32),
                "is_terminal": np.zeros((batch, t), bool), "cont": np.ones((batch, t), np.float32),
                "action": eye[rng.integers(0, 4, (batch, t))]}  # fmt: skip

    train = nj.pure(lambda d: wm.train(d, wm.initial(batch)))
    _, state = train({}, jax.random.PRNGKey(0), data(8))  # creates parameters and Adam state
    step = jax.jit(lambda st, d: train(st, jax.random.PRNGKey(1), d, create=False)[1])
    out["wm_update"] = timed(step, state, data(length))
    return out


def our_times(batch: int, length: int, repeat: int) -> dict[str, float]:
    """Seconds of our S5 stack forward + backward and ``ssm:popgym`` world-model update."""
    import torch
    import torch.nn.functional as F

    from worldflux import create_world_model
    from worldflux.models.ssm.s5 import S5Stack

    torch.manual_seed(0)
    stack = S5Stack(1024, 512, 5, blocks=8)
    u = torch.full((batch, length, 1024), 0.1)
    x0 = torch.zeros(batch, 5, 512, dtype=torch.complex64)
    reset = torch.zeros(batch, length)
    out = {"s5_stack_fwd_bwd": _time(lambda: stack(u, x0, reset, x0)[0].sum().backward(), repeat)}
    model = create_world_model("ssm:popgym", batch_size=batch, batch_length=length)
    first = torch.zeros(batch, length, dtype=torch.bool)
    first[:, 0] = True
    data = {
        "obs": F.one_hot(torch.randint(0, 4, (batch, length)), 4).float(),
        "action": F.one_hot(torch.randint(0, 4, (batch, length)), 4).float(),
        "reward": torch.randn(batch, length),
        "first": first,
        "terminal": torch.zeros(batch, length, dtype=torch.bool),
    }
    opts = model.configure_optimizers()
    out["wm_update"] = _time(lambda: model.run_update({"model": data}, opts), repeat)
    return out


def versus_official(official: str, jax_python: str, batch: int, length: int, repeat: int) -> None:
    """Print the official and our times side by side (the official one in a subprocess)."""
    import torch

    env = dict(os.environ, PYTHONPATH="", OMP_NUM_THREADS="1", JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")  # fmt: skip
    cmd = [jax_python, __file__, "--official-only", official, "--batch", str(batch),
           "--length", str(length), "--repeat", str(repeat)]  # fmt: skip
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    ref = json.loads(run.stdout.strip().splitlines()[-1])
    torch.set_num_threads(1)
    ours = our_times(batch, length, repeat)
    print(f"batch {batch} x {length}, one thread each, {repeat} timed repeats after a warm-up")
    print("| step | official JAX (jit) s | worldflux s | ratio |\n|---|---|---|---|")
    for key, label in (("s5_stack_fwd_bwd", "S5 stack fwd+bwd (mmaze: 1024 / 512 / 5 layers)"),
                       ("wm_update", "world-model update (ssm:popgym)")):  # fmt: skip
        print(f"| {label} | {ref[key]:.2f} | {ours[key]:.2f} | {ours[key] / ref[key]:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--units", type=int, default=1024)
    parser.add_argument("--state", type=int, default=512)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096])
    parser.add_argument("--max-recurrence", type=int, default=4096, help="skip longer loops")
    parser.add_argument("--update", default=None, help="preset to time full updates of")
    parser.add_argument("--length", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--versus-official", default=None, help="Recall2Imagine checkout")
    parser.add_argument("--jax-python", default="/work/refenv/r2i/bin/python")
    parser.add_argument("--official-only", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.official_only:
        times = official_times(args.official_only, args.batch, args.length, args.repeat)
        print(json.dumps(times))
    elif args.versus_official:
        versus_official(args.versus_official, args.jax_python, args.batch, args.length, args.repeat)
    elif args.update:
        update_time(args.update, args.batch, args.length, args.repeat)
    else:
        scan_table(
            args.units, args.state, args.layers, args.batch, args.lengths, args.max_recurrence
        )


if __name__ == "__main__":
    main()
