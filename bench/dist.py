#!/usr/bin/env python3
"""Data-parallel training on this machine: samples/s of WRN-16-4 (global batch 128) as one process
with 2 threads against `mpirun -np 2` with 1 thread each, the time per step spent in the gradient
all-reduce and the bytes reduced per step; then a model of the scaling to 8 GPUs per node and 4
nodes, from those numbers and assumed bandwidths.

    cargo build --release -p train --features mpi
    python3 bench/dist.py [TRAIN_BINARY] [--steps 10] [--rounds 3]

The data are synthetic CIFAR-10 records (random pixels and labels, in the binary layout), so the
numbers measure the step, not the learning. Rounds alternate the two set-ups (the VM drifts);
medians are reported.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def synthetic_cifar10(folder: Path, train: int, test: int) -> None:
    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    per_file = -(-train // 5)
    for i in range(1, 6):
        (folder / f"data_batch_{i}.bin").write_bytes(
            b"".join(bytes([rng.randrange(10)]) + rng.randbytes(3072) for _ in range(per_file))
        )
    (folder / "test_batch.bin").write_bytes(b"".join(bytes([rng.randrange(10)]) + rng.randbytes(3072) for _ in range(test)))


def one_run(binary: str, data: Path, out: Path, processes: int, threads: int, steps: int) -> dict:
    flags = (
        f"--data cifar10 --data-dir {data} --model wrn --depth 16 --width 4 --batch-size 128 "
        f"--train-size {128 * steps} --val-size 128 --test-size 128 --epochs 1 --opt sgd --lr 0.1 "
        f"--momentum 0.9 --workers 1 --quiet --out {out}"
    ).split()
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    cmd = [binary, *flags]
    if processes > 1:
        cmd = ["mpirun", "--oversubscribe", "--allow-run-as-root", "--bind-to", "none", "--mca", "btl", "self,vader",
               "-np", str(processes), "-x", "RAYON_NUM_THREADS", *cmd]
    subprocess.run(cmd, env=env, check=True)
    epoch = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    summary = json.loads((out / "summary.json").read_text())
    return {
        "seconds": epoch["seconds"],
        "samples_per_s": 128 * steps / epoch["seconds"],
        "allreduce_s_per_step": summary.get("allreduce_seconds", 0.0) / steps,
        "bytes_per_step": summary.get("allreduce_bytes", 0) / steps,
    }


def scaling_model(step_s: float, bytes_per_step: float) -> list[str]:
    """Ring all-reduce time 2 (N-1)/N x bytes / bandwidth against a step time that shrinks as 1/N
    of the per-GPU share of work (weak scaling: the per-GPU batch stays fixed, so the compute
    time per step stays `step_s`)."""
    lines = ["| set-up | N | link (assumed) | all-reduce ms | step ms | efficiency |", "|---|---|---|---|---|---|"]
    links = [("8 GPUs, NVLink", 8, 150e9), ("4 nodes x 8 GPUs, 100 Gb/s IB", 32, 12.5e9),
             ("4 nodes x 8 GPUs, 400 Gb/s IB", 32, 50e9)]
    for name, n, bw in links:
        t = 2 * (n - 1) / n * bytes_per_step / bw
        lines.append(f"| {name} | {n} | {bw / 1e9:.1f} GB/s | {1e3 * t:.2f} | {1e3 * step_s:.1f} | {step_s / (step_s + t):.1%} |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("binary", nargs="?", default="target/release/train")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synthetic_cifar10(tmp / "cifar10", 128 * a.steps + 5000, 128)
        results = {"1 process x 2 threads": [], "mpirun -np 2 x 1 thread": []}
        # A warm-up run of each, not counted.
        for r in range(a.rounds + 1):
            for (label, procs, threads) in [("1 process x 2 threads", 1, 2), ("mpirun -np 2 x 1 thread", 2, 1)]:
                out = tmp / f"run-{procs}-{r}"
                res = one_run(a.binary, tmp / "cifar10", out, procs, threads, a.steps)
                if r > 0:
                    results[label].append(res)
        print("| set-up | samples/s | step ms | all-reduce ms/step | MB reduced/step |")
        print("|---|---|---|---|---|")
        med = {}
        for label, rs in results.items():
            m = {k: statistics.median(x[k] for x in rs) for k in rs[0]}
            med[label] = m
            print(f"| {label} | {m['samples_per_s']:.1f} | {1e3 * m['seconds'] / a.steps:.0f} | "
                  f"{1e3 * m['allreduce_s_per_step']:.1f} | {m['bytes_per_step'] / 1e6:.2f} |")
        one, two = med["1 process x 2 threads"], med["mpirun -np 2 x 1 thread"]
        print(f"\nratio (2 processes / 1): {two['samples_per_s'] / one['samples_per_s']:.2f}x samples/s")
        print("\nscaling model (weak scaling, per-GPU batch fixed; step time assumed 100 ms on a GPU):")
        print("\n".join(scaling_model(0.1, two["bytes_per_step"])))


if __name__ == "__main__":
    sys.exit(main())
