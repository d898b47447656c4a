#!/usr/bin/env python3
"""A Bi-LSTM training step, ours next to PyTorch's nn.LSTM, in one run: batch 64, 32 tokens,
input 300, hidden 512 per direction, max over time, Linear(1024, 3), cross-entropy, backward.
Median of ROUNDS steps after 2 warm-up steps, same thread count.

usage: bench/.venv/bin/python bench/bilstm.py [ROUNDS]
"""
import json
import os
import statistics
import subprocess
import sys
import time

THREADS = int(os.environ.get("RAYON_NUM_THREADS", os.cpu_count()))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ours(rounds):
    env = dict(os.environ, RAYON_NUM_THREADS=str(THREADS))
    out = subprocess.run(["cargo", "bench", "-q", "-p", "zoo", "--bench", "bilstm", "--", str(rounds)],
                         cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["median_ms"]


def torch_step_times(rounds, warmup=2):
    """Milliseconds of each of `rounds` PyTorch steps after `warmup` (also used by train_step.py)."""
    import torch
    torch.set_num_threads(THREADS)
    lstm = torch.nn.LSTM(300, 512, bidirectional=True)
    head = torch.nn.Linear(1024, 3)
    x = torch.randn(32, 64, 300)
    y = torch.arange(64) % 3
    times = []
    for r in range(rounds + warmup):
        t = time.perf_counter()
        out, _ = lstm(x)
        loss = torch.nn.functional.cross_entropy(head(out.max(0).values), y)
        lstm.zero_grad()
        head.zero_grad()
        loss.backward()
        if r >= warmup:
            times.append((time.perf_counter() - t) * 1e3)
    return times


def main():
    import torch
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    mine = ours(rounds)
    theirs = statistics.median(torch_step_times(rounds))
    print(f"Bi-LSTM training step (batch 64, T 32, 300 -> 2 x 512), {THREADS} threads, median of {rounds}; "
          f"PyTorch {torch.__version__}\n")
    print("| step | ours (ms) | PyTorch (ms) | ours / PyTorch |")
    print("|---|---|---|---|")
    print(f"| Bi-LSTM forward + backward | {mine:.0f} | {theirs:.0f} | {mine / theirs:.2f} |")


if __name__ == "__main__":
    main()
