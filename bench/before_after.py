#!/usr/bin/env python3
"""Two builds of the toolkit side by side, interleaved round by round, medians reported: the
no-argument digits run and one epoch of the DNC preset (the `train` binaries), the smoke matrix
(every model x every optimizer; the `tests/train` test binaries) and training steps of the zoo
(the `train_step` bench binaries). For a refactor that must be no slower than what it replaces.

usage: bench/before_after.py ROUNDS DIR_BEFORE DIR_AFTER
Each DIR holds `train` (release), and optionally `tests-train` (the tests/train binary) and
`train_step` (`cargo bench -p zoo --bench train_step --no-run`); what a DIR lacks is skipped.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def timed(cmd, cwd):
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, out.stdout


def cases(d):
    """(name, function of a scratch folder giving seconds) for what folder d holds."""
    train, tests, step = (os.path.join(d, f) for f in ("train", "tests-train", "train_step"))
    out = []
    if os.path.exists(train):
        out.append(("digits default run (s)", lambda w: timed([train, "--quiet", "--out", "run"], w)[0]))
        dnc = [train, "--data", "repeat-copy", "--opt", "alig", "--epochs", "1", "--quiet", "--out", "dnc"]
        out.append(("DNC preset, 1 epoch = 1,000 steps (s)", lambda w: timed(dnc, w)[0]))
    if os.path.exists(tests):
        smoke = [tests, "smoke::every_model_with_every_optimizer_writes_a_complete_run", "--exact", "--test-threads", "1"]
        out.append(("smoke matrix, 5 models x 13 optimizers (s)", lambda w: timed(smoke, w)[0]))
    if os.path.exists(step):
        for m in ["wrn-16-4", "densenet-bc-40-40"]:
            def one(w, m=m):
                _, text = timed([step, m, "3", "1"], w)
                return json.loads(text.strip().splitlines()[-1])["median_ms"]
            out.append((f"{m} training step (ms)", one))
    return out


def main():
    rounds, before, after = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    names = [n for n, _ in cases(before)]
    results = {(n, side): [] for n in names for side in (0, 1)}
    for r in range(rounds):
        for side, d in enumerate((before, after) if r % 2 == 0 else (after, before)):
            side = side if r % 2 == 0 else 1 - side
            for name, run in cases(d):
                work = tempfile.mkdtemp()
                try:
                    results[(name, side)].append(run(work))
                finally:
                    shutil.rmtree(work, ignore_errors=True)
                print(f"# round {r + 1} {'after' if side else 'before'} {name}: {results[(name, side)][-1]:.2f}",
                      file=sys.stderr)
    print(f"Median of {rounds} interleaved rounds.\n")
    print("| what | before | after | after / before |\n|---|---|---|---|")
    for n in names:
        b, a = statistics.median(results[(n, 0)]), statistics.median(results[(n, 1)])
        print(f"| {n} | {b:.2f} | {a:.2f} | {a / b:.3f} |")


if __name__ == "__main__":
    main()
