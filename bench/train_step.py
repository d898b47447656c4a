#!/usr/bin/env python3
"""Full training steps (forward, loss, backward, optimizer step), ours next to PyTorch, in one run:
WRN-16-4 (batch 128), WRN-40-4 (32), DenseNet-BC-40-40 (64), ResNet-18 (16, 224x224) with SGD
(Nesterov 0.9, weight decay 5e-4) and cross-entropy, and the Bi-LSTM step of bench/bilstm.py.
Median of ROUNDS steps after WARMUP, same thread count; each model runs in its own process so that
its peak resident memory is its own. FLOPs per step are counted by torch's FlopCounterMode
(forward + backward); the fraction of peak uses cores x FMA width x clock from /proc/cpuinfo.

usage: bench/.venv/bin/python bench/train_step.py [--features onednn [--bf16]] [--alternate K] [ROUNDS] [WARMUP] [MODEL...]
       (--bf16: our convolutions in bfloat16 through oneDNN, PyTorch's step under CPU autocast to bf16)
       (--alternate K: ours and PyTorch take K turns each per model, the VM's drift shared between
       them; each side reports the median of its turns' medians)
       python3 bench/train_step.py --torch-all --device cuda [--precision f32|tf32|bf16] [--models a,b]
                                   [--batch-size N] [ROUNDS WARMUP]
The second form times PyTorch alone on the models and batch sizes of `train bench` (the paper's:
WRN-40-4 b128, DenseNet-BC-40-40 b64, ResNet-18 b256 at 224, the Bi-LSTM NLI model b64), for the
GPU check (bench/gpu/check.sh), printing the same table as `train bench`.
"""
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THREADS = int(os.environ.get("RAYON_NUM_THREADS", os.cpu_count()))
CNNS = ["wrn-16-4", "wrn-40-4", "densenet-bc-40-40", "resnet18"]


def torch_model(name):
    import torch
    from torch import nn
    import torch.nn.functional as F

    class WideBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.bn1, self.bn2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.short = None if cin == cout else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

        def forward(self, x):
            a = F.relu(self.bn1(x))
            h = self.conv2(F.relu(self.bn2(self.conv1(a))))
            return h + (x if self.short is None else self.short(a))

    class Wrn(nn.Module):
        def __init__(self, depth, k, classes=10):
            super().__init__()
            n = (depth - 4) // 6
            widths = [16, 16 * k, 32 * k, 64 * k]
            self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            layers = []
            for b in range(3):
                for i in range(n):
                    layers.append(WideBlock(widths[b] if i == 0 else widths[b + 1], widths[b + 1],
                                            (1 if b == 0 else 2) if i == 0 else 1))
            self.blocks = nn.Sequential(*layers)
            self.bn, self.fc = nn.BatchNorm2d(widths[3]), nn.Linear(widths[3], classes)

        def forward(self, x):
            h = F.relu(self.bn(self.blocks(self.conv1(x))))
            return self.fc(h.mean((2, 3)))

    class Bottleneck(nn.Module):
        def __init__(self, cin, growth):
            super().__init__()
            self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, 4 * growth, 1, bias=False)
            self.bn2, self.conv2 = nn.BatchNorm2d(4 * growth), nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False)

        def forward(self, x):
            h = self.conv2(F.relu(self.bn2(self.conv1(F.relu(self.bn1(x))))))
            return torch.cat([x, h], 1)

    class Transition(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.bn, self.conv = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 1, bias=False)

        def forward(self, x):
            return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)

    class DenseNetBC(nn.Module):
        def __init__(self, depth, growth, classes=10):
            super().__init__()
            n = (depth - 4) // 6
            c = 2 * growth
            self.conv1 = nn.Conv2d(3, c, 3, 1, 1, bias=False)
            layers = []
            for b in range(3):
                for _ in range(n):
                    layers.append(Bottleneck(c, growth))
                    c += growth
                if b < 2:
                    layers.append(Transition(c, c // 2))
                    c //= 2
            self.blocks = nn.Sequential(*layers)
            self.bn, self.fc = nn.BatchNorm2d(c), nn.Linear(c, classes)

        def forward(self, x):
            return self.fc(F.relu(self.bn(self.blocks(self.conv1(x)))).mean((2, 3)))

    if name == "wrn-16-4":
        return Wrn(16, 4), 128, 32, 10
    if name == "wrn-40-4":
        return Wrn(40, 4), 32, 32, 10
    if name == "densenet-bc-40-40":
        return DenseNetBC(40, 40), 64, 32, 10
    if name == "resnet18":
        import torchvision
        return torchvision.models.resnet18(num_classes=1000), 16, 224, 1000
    raise SystemExit(f"unknown model {name}")


def torch_one(name, rounds, warmup, bf16=False):
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    model, batch, side, classes = torch_model(name)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    x = torch.randn(batch, 3, side, side)
    y = torch.arange(batch) % 10

    def step():
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    with FlopCounterMode(display=False) as counter:
        step()
    times = []
    for r in range(rounds + warmup):
        t = time.perf_counter()
        step()
        if r >= warmup:
            times.append((time.perf_counter() - t) * 1e3)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"median_ms": statistics.median(times), "flops": counter.get_total_flops(),
                      "peak_rss_mib": rss, "version": torch.__version__}))


def torch_lstm(rounds, warmup):
    import torch
    from bilstm import torch_step_times  # the same step as bench/bilstm.py
    times = torch_step_times(rounds, warmup)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # Forward + backward of the LSTM products: 3 x 2 directions x T x B x 4H x (D + H) x 2.
    flops = 3 * 2 * 32 * 64 * 2048 * (300 + 512) * 2
    print(json.dumps({"median_ms": statistics.median(times), "flops": flops, "peak_rss_mib": rss,
                      "version": torch.__version__}))


class NliTorch:
    """The Bi-LSTM NLI model of the zoo: a shared 300 -> 2 x 2048 Bi-LSTM, max pooling, the
    features [u, v, |u - v|, u * v], then 512, 512, 3 linear layers without non-linearity."""

    def __new__(cls, device):
        import torch
        from torch import nn

        class Nli(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = nn.LSTM(300, 2048, bidirectional=True)
                self.fc = nn.Sequential(nn.Linear(8 * 2048, 512), nn.Linear(512, 512), nn.Linear(512, 3))

            def forward(self, s1, s2):
                u, v = self.lstm(s1)[0].max(0).values, self.lstm(s2)[0].max(0).values
                return self.fc(torch.cat([u, v, (u - v).abs(), u * v], 1))

        return Nli().to(device)


def torch_device_all(device, precision, rounds, warmup, models=None, batch_size=None):
    """PyTorch on `device` for the models of `train bench` (all by default), at the paper's batch
    sizes unless `batch_size` is given."""
    import torch
    torch.manual_seed(0)
    cuda = device.startswith("cuda")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
    paper = {"wrn-40-4": (128, 32, 100), "densenet-bc-40-40": (64, 32, 100), "resnet18": (256, 224, 1000)}
    print(f"PyTorch {torch.__version__}, {device}, {precision}, SGD, median of {rounds} steps after {warmup} warm-up\n")
    print("| model | batch | step (ms, median) | fastest (ms) | samples/s | peak memory (MiB) |\n|---|---|---|---|---|---|")
    for name in models or list(paper) + ["bilstm"]:
        if name == "bilstm":
            model, batch = NliTorch(device), batch_size or 64
            x = (torch.randn(32, batch, 300, device=device), torch.randn(32, batch, 300, device=device))
            y = torch.arange(batch, device=device) % 3
        else:
            model, batch = torch_model(name)[0], batch_size or paper[name][0]
            if name != "resnet18":
                model.fc = torch.nn.Linear(model.fc.in_features, paper[name][2])
            model = model.to(device)
            side = paper[name][1]
            x = (torch.randn(batch, 3, side, side, device=device),)
            y = torch.arange(batch, device=device) % paper[name][2]
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
        times = []
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        for r in range(rounds + warmup):
            t = time.perf_counter()
            with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = torch.nn.functional.cross_entropy(model(*x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if cuda:
                torch.cuda.synchronize()
            if r >= warmup:
                times.append((time.perf_counter() - t) * 1e3)
        med = statistics.median(times)
        peak = (torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**20
        print(f"| {name} | {batch} | {med:.1f} | {min(times):.1f} | {batch / med * 1e3:.0f} | {peak:.0f} |", flush=True)
        del model, opt, x, y, loss
        if cuda:
            torch.cuda.empty_cache()


def run_json(cmd, env=None):
    out = subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def peak_gflops():
    text = open("/proc/cpuinfo").read()
    mhz = max(float(m) for m in re.findall(r"cpu MHz\s*:\s*([\d.]+)", text))
    flags = re.search(r"flags\s*:(.*)", text).group(1).split()
    per_cycle = 64 if "avx512f" in flags else 32  # two FMA units x lanes x 2 flops
    return THREADS * per_cycle * mhz / 1e3


def main():
    args = [a for a in sys.argv[1:]]
    if args and args[0] == "--torch-one":
        return torch_one(args[1], int(args[2]), int(args[3]), "--bf16" in args)
    if args and args[0] == "--torch-all":
        import argparse
        p = argparse.ArgumentParser(prog="train_step.py --torch-all")
        p.add_argument("--device", default="cuda")
        p.add_argument("--precision", default="f32", choices=["f32", "tf32", "bf16"])
        p.add_argument("--models", help="comma-separated (default: all)")
        p.add_argument("--batch-size", type=int)
        p.add_argument("rounds", nargs="?", type=int, default=10)
        p.add_argument("warmup", nargs="?", type=int, default=3)
        a = p.parse_args(args[1:])
        return torch_device_all(a.device, a.precision, a.rounds, a.warmup,
                                a.models.split(",") if a.models else None, a.batch_size)
    if args and args[0] == "--torch-lstm":
        return torch_lstm(int(args[1]), int(args[2]))
    features = []
    if "--features" in args:
        i = args.index("--features")
        features = ["--features", args[i + 1]]
        del args[i:i + 2]
    bf16 = "--bf16" in args
    if bf16:
        args.remove("--bf16")
    turns = 1
    if "--alternate" in args:
        i = args.index("--alternate")
        turns = int(args[i + 1])
        del args[i:i + 2]
    numbers = [int(a) for a in args if a.isdigit()]
    rounds = numbers[0] if numbers else 5
    warmup = numbers[1] if len(numbers) > 1 else 2
    models = [a for a in args if not a.isdigit()] or CNNS + ["bilstm"]
    env = dict(os.environ, RAYON_NUM_THREADS=str(THREADS))
    cargo = ["cargo", "bench", "-q", "-p", "zoo"] + features
    subprocess.run(cargo + ["--no-run"], cwd=ROOT, env=env, check=True)
    peak = peak_gflops()
    rows, version = [], "?"
    for m in models:
        if m == "bilstm":
            our_cmd = cargo + ["--bench", "bilstm", "--", str(rounds)]
            their_cmd = [sys.executable, __file__, "--torch-lstm", str(rounds), str(warmup)]
        else:
            our_cmd = cargo + ["--bench", "train_step", "--", m, str(rounds), str(warmup)] + ["--bf16"] * bf16
            their_cmd = [sys.executable, __file__, "--torch-one", m, str(rounds), str(warmup)] + ["--bf16"] * bf16
        runs = [(run_json(our_cmd, env), run_json(their_cmd, env)) for _ in range(turns)]
        ours, theirs = runs[-1]
        ours["median_ms"] = statistics.median(o["median_ms"] for o, _ in runs)
        theirs["median_ms"] = statistics.median(t["median_ms"] for _, t in runs)
        ours.setdefault("peak_rss_mib", float("nan"))
        version = theirs["version"]
        gf = theirs["flops"] / 1e9
        rows.append((m, ours, theirs, gf))
        print(f"# {m}: ours {ours['median_ms']:.0f} ms, PyTorch {theirs['median_ms']:.0f} ms", file=sys.stderr)
    alternated = f", {turns} alternating turns each (median of their medians)" if turns > 1 else ""
    print(f"Training step{' (' + ' '.join(features + ['--bf16'] * bf16) + ')' if features else ''}{alternated}, {THREADS} threads, median of {rounds} after {warmup} warm-up; PyTorch {version}; "
          f"peak {peak:.0f} GFLOP/s (cores x FMA width x clock)\n")
    print("| model (batch) | GFLOP/step | ours (ms) | PyTorch (ms) | ours / PyTorch | ours GFLOP/s (% peak) "
          "| PyTorch GFLOP/s (% peak) | peak RSS ours / PyTorch (MiB) |")
    print("|---|---|---|---|---|---|---|---|")
    for m, ours, theirs, gf in rows:
        o, t = ours["median_ms"], theirs["median_ms"]
        og, tg = gf / (o / 1e3), gf / (t / 1e3)
        print(f"| {m} | {gf:.1f} | {o:.0f} | {t:.0f} | {o / t:.2f} | {og:.1f} ({100 * og / peak:.0f}%) | "
              f"{tg:.1f} ({100 * tg / peak:.0f}%) | {ours['peak_rss_mib']:.0f} / {theirs['peak_rss_mib']:.0f} |")
    if features and os.environ.get("ZOO_WINOGRAD") != "0":
        print("\nGFLOP/step counts a direct convolution's work; where oneDNN has Winograd's algorithm (2.x), "
              "ours does less on the 3x3 layers, so its rate can pass the FMA peak (ZOO_WINOGRAD=0: direct).")


if __name__ == "__main__":
    main()
