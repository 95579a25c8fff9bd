"""Value estimation: our vectorized GAE / TD(lambda) vs TorchRL 0.14.1's kernels.

For each ``T`` and ``B``, times forward and forward+backward (w.r.t. a 0-d ``gamma`` and the
rewards) of:

- ``ours``: :func:`torchrl_functional.functional.generalized_advantage_estimate` /
  ``td_lambda_return_estimate`` (parallel prefix scan);
- ``torchrl_loop``: TorchRL's loop kernels (correct gamma gradient);
- ``torchrl_vec``: TorchRL's vectorized kernels.

and says whether each kernel's gradient w.r.t. ``gamma`` is correct (compared in float64
with autograd through a plain Python loop).

Usage: ``python -m benchmarks.bench_value [--threads N] [--smoke]``.
"""

from __future__ import annotations

import argparse
import math
import sys

import torch
from torchrl.objectives.value import functional as trl

from benchmarks.common import format_table, interleaved_medians
from torchrl_functional.functional import generalized_advantage_estimate, td_lambda_return_estimate

KERNELS = {
    "gae": {
        "ours": lambda g, v, nv, r, d: generalized_advantage_estimate(g, 0.95, v, nv, r, d)[0],
        "torchrl_loop": lambda g, v, nv, r, d: trl.generalized_advantage_estimate(g, 0.95, v, nv, r, d)[0],
        "torchrl_vec": lambda g, v, nv, r, d: trl.vec_generalized_advantage_estimate(g, 0.95, v, nv, r, d)[0],
    },
    "td_lambda": {
        "ours": lambda g, v, nv, r, d: td_lambda_return_estimate(g, 0.95, nv, r, d),
        "torchrl_loop": lambda g, v, nv, r, d: trl.td_lambda_return_estimate(g, 0.95, nv, r, d),
        "torchrl_vec": lambda g, v, nv, r, d: trl.vec_td_lambda_return_estimate(g, 0.95, nv, r, d),
    },
}


def _data(B: int, T: int, dtype=torch.float32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    v, nv, r = (torch.randn(B, T, 1, generator=g, dtype=dtype) for _ in range(3))
    d = torch.rand(B, T, 1, generator=g) < 0.02
    return v, nv, r, d


def _python_loop_reference(kind: str, gamma, v, nv, r, d):
    """The recursion written out step by step: the independent reference for gradients."""
    T = v.shape[-2]
    out, x = [], torch.zeros_like(v[..., 0, :])
    for t in reversed(range(T)):
        nd = (~d[..., t, :]).to(v.dtype)
        if kind == "gae":
            delta = r[..., t, :] + gamma * nd * nv[..., t, :] - v[..., t, :]
            x = delta + gamma * 0.95 * nd * x
        else:
            nvt = nd * nv[..., t, :]
            boot = nvt if (t == T - 1) else nd * x + (1 - nd) * nvt
            x = r[..., t, :] + gamma * (0.05 * nvt + 0.95 * boot)
        out.append(x)
    return torch.stack(out[::-1], -2)


def gradient_is_correct(kind: str, name: str, T: int) -> bool:
    v, nv, r, d = _data(2, min(T, 64), dtype=torch.float64, seed=1)
    gamma = torch.tensor(0.97, dtype=torch.float64, requires_grad=True)
    try:
        (g_kernel,) = torch.autograd.grad(KERNELS[kind][name](gamma, v, nv, r, d).sum(), gamma)
    except RuntimeError:
        return False
    (g_ref,) = torch.autograd.grad(_python_loop_reference(kind, gamma, v, nv, r, d).sum(), gamma)
    return bool(torch.allclose(g_kernel, g_ref, rtol=1e-6, atol=1e-9))


def run(sizes: list[tuple[int, int]], repeats: int, inner: int) -> list[dict]:
    rows = []
    for kind, kernels in KERNELS.items():
        correct = {name: gradient_is_correct(kind, name, 64) for name in kernels}
        for B, T in sizes:
            v, nv, r, d = _data(B, T)
            gamma = torch.tensor(0.99, requires_grad=True)
            r_grad = r.clone().requires_grad_()

            def fwd(fn, args=(gamma, v, nv, r, d)):
                def call():
                    with torch.no_grad():
                        fn(*args)
                return call

            def fwd_bwd(fn, args=(gamma, v, nv, r_grad, d)):
                def call():
                    fn(*args).sum().backward()
                return call

            variants = {}
            for name, fn in kernels.items():
                variants[f"{name} fwd"] = fwd(fn)
                variants[f"{name} fwd+bwd"] = fwd_bwd(fn)
            t = interleaved_medians(variants, repeats=repeats, inner=inner, warmup=1)
            for mode in ("fwd", "fwd+bwd"):
                row = {"kernel": kind, "B": B, "T": T, "mode": mode}
                for name in kernels:
                    row[f"{name} ms"] = t[f"{name} {mode}"] * 1e3
                row["loop/ours"] = t[f"torchrl_loop {mode}"] / t[f"ours {mode}"]
                row["vec/ours"] = t[f"torchrl_vec {mode}"] / t[f"ours {mode}"]
                row["gamma grad ok (ours/loop/vec)"] = "/".join(
                    "yes" if correct[n] else "NO" for n in ("ours", "torchrl_loop", "torchrl_vec")
                )
                rows.append(row)
            print(f"  done {kind} B={B} T={T}", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description="value estimation benchmark")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--T", type=int, nargs="+", default=[128, 1024, 4096])
    parser.add_argument("--B", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--inner", type=int, default=3)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.smoke:
        args.T, args.B, args.repeats, args.inner = [16], [2], 2, 1
    sizes = [(B, T) for T in args.T for B in args.B]
    rows = run(sizes, args.repeats, args.inner)
    headers = list(rows[0])
    print(f"Value estimation, ms per call (median of {args.repeats} interleaved repeats x {args.inner} calls), "
          f"{args.threads} thread(s); gradient w.r.t. a 0-d gamma checked against a Python loop in float64")
    print(format_table(headers, [[r[h] for h in headers] for r in rows]))
    for r in rows:
        assert all(math.isfinite(v) for v in r.values() if isinstance(v, float)), r
    return rows


if __name__ == "__main__":
    main()
