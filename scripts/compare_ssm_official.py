"""Compare worldflux's S5 core (R2I) with the official JAX code: same weights, same inputs.

The official code is chandar-lab/Recall2Imagine at commit ``6e317e7`` (not vendored: pass a
checkout with ``--official``). Two steps across two Python environments, as the other
``compare_*_official.py`` scripts:

1. ``dump`` (the JAX environment's Python: ``jax``, ``flax``): imports only the reference's
   ``ssm/`` package (``MIMOLayer`` inside ``SequenceBlock``, batched, exactly the ``MIMOBlock``
   that ``ssm_nets.init_mimo_ssm`` builds with R2I's ``ssm_cell``/``ssm`` settings: bilinear,
   ``conj_sym`` off, ``C_init`` trunc_standard_normal, post-norm, GLU, reset mode ``init``),
   initialises it, perturbs every parameter (zero biases and unit norm scales would hide layout
   errors) and writes to an ``.npz``: the parameters, the inputs, the official parallel-scan
   output (``parallel=True``, ``fast_scan``) with its done flags, the official one-step path
   (``parallel=False``, one call per step, the state replaced by the initial vector where an
   episode starts, as acting does) and the gradients of a fixed random projection of the scan
   output with respect to every parameter and to the carried and initial states.
2. ``compare`` (worldflux's Python): builds :class:`worldflux.models.ssm.s5.S5Stack` with the
   same sizes, loads the official parameters (dense ``kernel (in, out)`` -> ``weight (out, in)``;
   ``Lambda_re/im``, ``B (P, H, 2)``, ``C (H, P, 2)``, ``D``, ``log_step`` and the LayerNorm as
   they are) and prints the largest absolute differences.

3. The world model (``scripts/ssm_official_wm.py``): the official ``WorldModel.loss`` at
   ``ssm:ci``'s widths against ours with the same weights and the official posterior samples:
   every loss term, the latents and every parameter's gradient.

``all`` does both steps (the dump through ``--jax-python``)::

    python scripts/compare_ssm_official.py all \
        --official /work/ref/Recall2Imagine --jax-python /work/refenv/r2i/bin/python

Reset flags. The official ``fast_scan`` pads the flags with ``np.insert(dones, -1, 0)``, i.e.
before the last element instead of in front, so the flag given for step ``s + 1`` resets step
``s`` (for ``s <= T - 3``), step ``T - 2`` never resets and the last flag resets the last step.
:func:`official_resets` computes where the official scan really restarts; our scan and both
one-step paths are fed those steps (a last row with the literal flags shows the shift).

Three cases: no resets; resets with a zero restart vector (``initial_hidden`` at
initialisation); resets with a non-zero one (``initial_hidden`` once learned). The official
operator ``vector_operator_with_dones_initial`` is associative only for a zero restart vector: a
combined segment that contains a restart keeps ``A != 0`` and adds ``A z`` again each time it is
combined, so in the third case the official parallel scan departs from its own one-step
recurrence (and its gradient for the restart vector is off even in the second). Ours equals the
official one-step recurrence in all three (see docs/ssm.md).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np
from ssm_official_wm import WM_B, WM_T, compare_wm, dump_wm  # scripts/ssm_official_wm.py

B, T, H, P, L, BLOCKS = 3, 24, 16, 16, 2, 8  # batch, length, units, state, layers, blocks
DT_MIN, DT_MAX = 0.001, 0.1


def official_resets(dones: np.ndarray) -> np.ndarray:
    """Steps ``(B, T)`` at which the official parallel scan restarts, given its ``dones``."""
    padded = np.insert(dones, -1, 0, axis=1)  # what fast_scan does, per batch row
    return padded[:, 1:]  # element 0 is the carried state, element s + 1 is step s


CASES = {
    "no resets": "none",
    "resets, zero initial state": "zero",
    "resets, learned initial state": "learned",
}


def make_inputs(case: str, seed: int = 0) -> dict:
    """Inputs, flags and the output projection of the gradient check for one case.

    ``none``: no episode starts (all flags 0); ``zero``: random starts, the restart vector 0
    (the reference's ``initial_hidden`` at initialisation); ``learned``: random starts and a
    non-zero restart vector (``initial_hidden`` once trained).
    """
    rng = np.random.default_rng(seed)
    dones = (rng.random((B, T)) < 0.15).astype(np.float32)
    dones[:, 0] = 1.0
    dones[0, 1:] = 0.0  # one row without any reset
    dones[1, T - 1] = 1.0  # the last flag (the official scan keeps it at the last step)
    init = (0.5 * rng.normal(size=(2, B, L, P))).astype(np.float32)
    return {
        "u": rng.normal(size=(B, T, H)).astype(np.float32),
        "x0": (0.5 * rng.normal(size=(2, B, L, P))).astype(np.float32),
        "init": init if case == "learned" else 0 * init,
        "dones": dones if case != "none" else 0 * dones,
        "w": rng.normal(size=(B, T, H)).astype(np.float32),
    }


# ---------------------------------------------------------------------------- official (JAX)
def dump(official: str, out: str, case: str) -> None:
    """Run the official S5 block on one case; write parameters, outputs, gradients to ``out``."""
    import jax
    import jax.numpy as jnp

    sys.path.insert(0, os.path.join(official, "recall2imagine"))  # the ssm/ package alone
    from ssm.common import SequenceBlock, batchwise  # noqa: E402
    from ssm.mimo import MIMOLayer  # noqa: E402

    def block(parallel: bool):
        layer = dict(H=H, P=P, n_blocks=BLOCKS, C_init="trunc_standard_normal",
                     discretization="bilinear", dt_min=DT_MIN, dt_max=DT_MAX, conj_sym=False,
                     clip_eigs=False, parallel=parallel, reset_mode="init")  # fmt: skip
        return batchwise(SequenceBlock)(layer_cls=MIMOLayer, layer=layer, dropout=0.0,
                                        d_model=H, n_layers=L, use_norm=True, prenorm=False,
                                        mlp=True, glu=True)  # fmt: skip

    x = make_inputs(case)
    u, dones, w = (jnp.asarray(x[k]) for k in ("u", "dones", "w"))
    cplx = lambda a: a[0] + 1j * a[1]  # noqa: E731
    fast, slow = block(True), block(False)
    params = fast.init(jax.random.PRNGKey(0), (u, dones), cplx(x["x0"]), cplx(x["init"]))
    leaves, tree = jax.tree_util.tree_flatten_with_path(params)
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    leaves = [v + 0.05 * jax.random.normal(k, v.shape) for (_, v), k in zip(leaves, keys)]
    params = jax.tree_util.tree_unflatten(tree, leaves)
    names = ["/".join(str(getattr(p, "key", p)) for p in path) for path, _ in
             jax.tree_util.tree_flatten_with_path(params)[0]]  # fmt: skip

    def scan(params, x0, init):
        (y, _), xs = fast.apply(params, (u, dones), cplx(x0), cplx(init))
        return y, xs

    def stepped(params, x0, init):
        # acting: one call per step, the state replaced by the restart vector where an
        # episode starts (at the steps where the official scan restarts)
        resets = official_resets(np.asarray(dones))
        h, init = cplx(x0), cplx(init)
        ys, hs = [], []
        for t in range(T):
            h = jnp.where(resets[:, t, None, None] > 0, init, h)
            (yt, _), h = slow.apply(params, u[:, t : t + 1], h, init)
            ys.append(yt[:, 0])
            hs.append(h)
        return jnp.stack(ys, 1), jnp.stack(hs, 1)

    res = {f"param/{n}": np.asarray(v) for n, v in zip(names, leaves)}
    args = (params, jnp.asarray(x["x0"]), jnp.asarray(x["init"]))
    for tag, fn in (("scan", scan), ("step", stepped)):
        y, xs = fn(*args)
        grads = jax.grad(lambda *a, fn=fn: jnp.sum(fn(*a)[0] * w), argnums=(0, 1, 2))(*args)
        res.update({f"y_{tag}": np.asarray(y), f"x_{tag}": np.asarray(xs)})
        res.update({f"grad_{tag}/{n}": np.asarray(g) for n, g in
                    zip(names, jax.tree_util.tree_leaves(grads[0]))})  # fmt: skip
        res.update({f"grad_{tag}_x0": np.asarray(grads[1]),
                    f"grad_{tag}_init": np.asarray(grads[2])})  # fmt: skip
    np.savez(out, **res, **{f"in/{k}": v for k, v in x.items()})
    print(f"official ({case}): {len(names)} parameter arrays, jax {jax.__version__}; wrote {out}")


# ---------------------------------------------------------------------------- worldflux (torch)
def param_map(stack) -> dict:
    """Official parameter name -> (our tensor, transpose?)."""
    out = {}
    for i, layer in enumerate(stack.layers):
        pre = f"params/layers_{i}"
        for name in ("Lambda_re", "Lambda_im", "B", "C", "D", "log_step"):
            out[f"{pre}/seq/{name}"] = (getattr(layer, name), False)
        for dense in ("out", "out2"):
            out[f"{pre}/{dense}/kernel"] = (getattr(layer, dense).weight, True)
            out[f"{pre}/{dense}/bias"] = (getattr(layer, dense).bias, False)
        out[f"{pre}/norm/scale"] = (layer.norm.weight, False)
        out[f"{pre}/norm/bias"] = (layer.norm.bias, False)
    return out


def compare(path: str) -> list[tuple[str, float, float]]:
    """Rows ``(quantity, max |ours - official|, max |official|)``."""
    import torch

    from worldflux.models.ssm.s5 import S5Stack

    data = np.load(path)
    stack = S5Stack(H, P, L, blocks=BLOCKS, dt_min=DT_MIN, dt_max=DT_MAX)
    mapping = param_map(stack)
    official = sorted(k[len("param/") :] for k in data.files if k.startswith("param/"))
    if sorted(mapping) != official:
        raise SystemExit(f"parameter names differ: {sorted(set(official) ^ set(mapping))}")
    with torch.no_grad():
        for name, (tensor, transpose) in mapping.items():
            value = torch.from_numpy(data[f"param/{name}"])
            tensor.copy_(value.T if transpose else value)
    t = lambda k: torch.from_numpy(data[f"in/{k}"])  # noqa: E731
    u, w = t("u"), t("w")
    resets = torch.from_numpy(official_resets(data["in/dones"]))
    x0, init = t("x0").requires_grad_(), t("init").requires_grad_()
    cplx = lambda a: torch.complex(a[0], a[1])  # noqa: E731
    y, xs = stack(u, cplx(x0), resets, cplx(init))
    (y * w).sum().backward()
    with torch.no_grad():
        h, h_init = cplx(t("x0")), cplx(t("init"))
        ys, hs = [], []
        for i in range(T):
            h = torch.where(resets[:, i, None, None] > 0, h_init, h)
            yt, h = stack.step(u[:, i], h)
            ys.append(yt)
            hs.append(h)
        y_step, x_step = torch.stack(ys, 1), torch.stack(hs, 1)
        y_literal, _ = stack(u, cplx(t("x0")), t("dones"), h_init)

    def row(name: str, ours, ref) -> tuple[str, float, float]:
        ours = ours.detach().numpy() if hasattr(ours, "detach") else np.asarray(ours)
        return name, float(np.abs(ours - ref).max()), float(np.abs(ref).max())

    rows = [
        row("scan output y vs official fast_scan", y, data["y_scan"]),
        row("scan states x vs official fast_scan", xs, data["x_scan"]),
        row("scan output y vs our one-step recurrence", y, y_step.numpy()),
        row("one-step output vs official one-step", y_step, data["y_step"]),
        row("one-step states vs official one-step", x_step, data["x_step"]),
        row("official fast_scan vs official one-step", data["y_scan"], data["y_step"]),
    ]
    ours = {n: (t.grad.T if tr else t.grad).numpy() for n, (t, tr) in mapping.items()}
    for tag in ("scan", "step"):
        which = "fast_scan" if tag == "scan" else "one-step"
        diff = max(float(np.abs(g - data[f"grad_{tag}/{n}"]).max()) for n, g in ours.items())
        scale = max(float(np.abs(data[f"grad_{tag}/{n}"]).max()) for n in ours)
        rows.append((f"grads of all {len(ours)} parameter arrays vs official {which}", diff, scale))
        rows.append(
            row(f"grad carried state x0 vs official {which}", x0.grad, data[f"grad_{tag}_x0"])
        )
        rows.append(
            row(f"grad restart state vs official {which}", init.grad, data[f"grad_{tag}_init"])
        )
    rows.append(row("(info) ours fed the literal flags vs official", y_literal, data["y_scan"]))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("step", choices=("dump", "compare", "all"), nargs="?", default="all")
    p.add_argument("--official", default="/work/ref/Recall2Imagine", help="checkout @ 6e317e7")
    p.add_argument("--jax-python", default="/work/refenv/r2i/bin/python")
    p.add_argument("--dir", default="/tmp/ssm_compare", help="where the .npz files go")
    a = p.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    npz = {c: os.path.join(a.dir, f"official_s5_{c}.npz") for c in CASES.values()}
    wm_npz = os.path.join(a.dir, "official_wm.npz")
    if a.step == "dump":
        for case, path in npz.items():
            dump(a.official, path, case)
        dump_wm(a.official, wm_npz)
        return
    if a.step == "all":
        env = dict(os.environ, PYTHONPATH="", OMP_NUM_THREADS="1", JAX_PLATFORMS="cpu",
                   XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")  # fmt: skip
        cmd = [a.jax_python, __file__, "dump", "--official", a.official, "--dir", a.dir]
        subprocess.run(cmd, check=True, env=env)
    import torch

    torch.set_num_threads(1)
    results = {title: compare(npz[case]) for title, case in CASES.items()}
    print(f"S5 stack: batch {B}, length {T}, units {H}, state {P}, layers {L}, blocks {BLOCKS}")
    print("max abs difference (max abs value) per case:\n")
    print("| quantity | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for i, (name, _, _) in enumerate(next(iter(results.values()))):
        cells = [f"{rows[i][1]:.1e} ({rows[i][2]:.3g})" for rows in results.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\nWorld model (ssm:ci widths, 4-d vector, 4 actions, batch {WM_B} x {WM_T}):\n")
    print("| quantity | max abs diff | max abs value |\n|---|---|---|")
    for name, diff, scale in compare_wm(wm_npz):
        print(f"| {name} | {diff:.1e} | {scale:.3g} |")


if __name__ == "__main__":
    main()
