#!/usr/bin/env python3
"""One optimizer step on the WRN-40-4 parameter set (8,949,210 f32 parameters), ours next to PyTorch.

Runs, in one go: the Rust harness `cargo bench -p alig --bench step_table` (the cases interleaved
round by round, median of ROUNDS), then PyTorch on the same shapes, the same distributions and the
same thread count, also interleaved; prints the README's table.

PyTorch's cases: torch.optim.SGD(lr 0.1, momentum 0.9, Nesterov, weight decay 5e-4), torch.optim.Adam
(lr 1e-3), and ALI-G (max_lr 0.1, momentum 0.9; with projection, max_norm 50) written in PyTorch the
way the reference `alig/th/alig.py` and `projection.py` compute it (per-parameter in-place ops).

usage: bench/.venv/bin/python bench/optim_step.py [ROUNDS]   (pip install torch numpy into bench/.venv)
"""
import json
import math
import os
import statistics
import subprocess
import sys
import time

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 21
THREADS = int(os.environ.get("RAYON_NUM_THREADS", os.cpu_count()))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def wrn_shapes(depth=40, width=4, classes=10):
    n = (depth - 4) // 6
    out = [(16, 3, 3, 3)]
    c_in = 16
    for c_out in (16 * width, 32 * width, 64 * width):
        for b in range(n):
            c = c_in if b == 0 else c_out
            out += [(c,), (c,), (c_out, c, 3, 3), (c_out,), (c_out,), (c_out, c_out, 3, 3)]
            if c != c_out:
                out.append((c_out, c, 1, 1))
        c_in = c_out
    return out + [(c_in,), (c_in,), (classes, c_in), (classes,)]


def ours():
    env = dict(os.environ, RAYON_NUM_THREADS=str(THREADS))
    out = subprocess.run(["cargo", "bench", "-q", "-p", "alig", "--bench", "step_table", "--", str(ROUNDS)],
                         cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
    return {r["case"]: r["median_ms"] for r in map(json.loads, filter(None, out.splitlines()))}


def torch_cases():
    import torch
    torch.set_num_threads(THREADS)
    shapes = wrn_shapes()
    assert sum(math.prod(s) for s in shapes) == 8_949_210

    def param_set():
        ps = [torch.nn.Parameter((torch.rand(s) - 0.5) * 0.1) for s in shapes]
        for p in ps:
            p.grad = (torch.rand(p.shape) - 0.5) * 2e-3
        return ps

    def alig(max_norm):
        ps = param_set()
        bufs = [torch.zeros_like(p) for p in ps]
        loss, max_lr, mu, eps = 2.3, 0.1, 0.9, 1e-5

        @torch.no_grad()
        def step():
            sq = sum(p.grad.norm() ** 2 for p in ps)
            gamma = min(float(loss / (sq + eps)), max_lr)
            for p, b in zip(ps, bufs):
                p.add_(p.grad, alpha=-gamma)
                b.mul_(mu).add_(p.grad, alpha=-gamma)
                p.add_(b, alpha=mu)
            if max_norm is not None:
                total = torch.sqrt(sum(p.norm() ** 2 for p in ps))
                if total > max_norm:
                    for p in ps:
                        p.mul_(max_norm / total)
        return step

    sgd = torch.optim.SGD(param_set(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    adam = torch.optim.Adam(param_set(), lr=1e-3)
    cases = {"sgd": sgd.step, "adam": adam.step, "alig": alig(None), "alig-proj": alig(50.0)}
    times = {k: [] for k in cases}
    for r in range(ROUNDS + 3):
        for k, f in cases.items():
            t = time.perf_counter()
            f()
            if r >= 3:
                times[k].append((time.perf_counter() - t) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}, torch.__version__


def main():
    mine = ours()
    theirs, version = torch_cases()
    print(f"optimizer step, WRN-40-4 parameter set (8,949,210 f32), {THREADS} threads, median of {ROUNDS} "
          f"interleaved rounds; PyTorch {version}\n")
    print("| step | ours (ms) | PyTorch (ms) | ours / PyTorch |")
    print("|---|---|---|---|")
    labels = {"sgd": "SGD, Nesterov 0.9, wd 5e-4", "adam": "Adam", "alig": "ALI-G, momentum 0.9",
              "alig-proj": "ALI-G, momentum 0.9, projection (active)"}
    for k, label in labels.items():
        print(f"| {label} | {mine[k]:.2f} | {theirs[k]:.2f} | {mine[k] / theirs[k]:.2f} |")
    for k in ("sgd-tensor-ops", "alig-tensor-ops"):
        print(f"| {k} (candle ops, no fused kernels) | {mine[k]:.2f} | | |")
    print(f"\nALI-G / SGD: ours {mine['alig'] / mine['sgd']:.2f}x, PyTorch {theirs['alig'] / theirs['sgd']:.2f}x; "
          f"with projection: ours {mine['alig-proj'] / mine['sgd']:.2f}x, PyTorch {theirs['alig-proj'] / theirs['sgd']:.2f}x")


if __name__ == "__main__":
    main()
