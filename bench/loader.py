#!/usr/bin/env python3
"""Data loading throughput, ours next to torchvision's DataLoader, in one run.

Both load 50,000 CIFAR-shaped uint8 images with the paper's training transform (RandomCrop(32,
padding=4), RandomHorizontalFlip, ToTensor, Normalize with the CIFAR constants), batch 128,
shuffled, with the same number of workers; images/s is the median over epochs after one warm-up
epoch. torchvision's pipeline is the one `torchvision.datasets.CIFAR10` runs (a PIL image per
sample).

Then the ImageNet pipeline on a folder of real photos (a `jpeg` row), when the `foolbox` package
is installed (`pip install --no-deps foolbox`: its 20 ImageNet photos, re-encoded here at
ImageNet-like sizes, 500 x 375 and 375 x 500 and in between, quality 90, into 1,000 files over 10
class folders): decode, Resize(224), RandomCrop(224), RandomHorizontalFlip, ToTensor, Normalize,
batch 64, the same workers; torchvision's `ImageFolder` + `DataLoader` against our `ImageFolder` +
`Loader`.

usage: bench/.venv/bin/python bench/loader.py [WORKERS] [EPOCHS]
       (pip install torch torchvision numpy pillow into bench/.venv)
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

WORKERS = int(sys.argv[1]) if len(sys.argv) > 1 else 2
EPOCHS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def jpeg_folder(n=1000):
    """The folder of the `jpeg` row (made once, in the temporary directory), or None without foolbox."""
    import glob
    import importlib.util
    spec = importlib.util.find_spec("foolbox")  # found, not imported (its dependencies are not needed)
    if spec is None:
        return None
    from PIL import Image
    photos = sorted(glob.glob(os.path.join(os.path.dirname(spec.origin), "data", "imagenet_*.jpg")))
    root = os.path.join(tempfile.gettempdir(), f"alig-bench-jpeg-{n}")
    if not os.path.isdir(root):
        for k in range(n):
            short = 333 + (k * 7) % 43  # 333 to 375, like most ImageNet photos
            size = (500, short) if k % 3 else (short, 500)
            img = Image.open(photos[k % len(photos)]).convert("RGB").resize(size, Image.BICUBIC)
            os.makedirs(os.path.join(root, f"class{k % 10}"), exist_ok=True)
            img.save(os.path.join(root, f"class{k % 10}", f"{k:04}.jpg"), quality=90)
    return root


def ours(folder):
    cmd = ["cargo", "bench", "-q", "-p", "data", "--bench", "loader", "--", str(WORKERS), str(EPOCHS)]
    out = subprocess.run(cmd + ([folder] if folder else []), cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout
    return {r["what"]: r for r in map(json.loads, filter(None, out.splitlines()))}


def median_rate(loader):
    """Median images/s of a torch DataLoader over EPOCHS epochs after a warm-up epoch."""
    rates = []
    for e in range(EPOCHS + 1):
        t = time.perf_counter()
        n = sum(x.shape[0] for x, _ in loader)
        if e > 0:
            rates.append(n / (time.perf_counter() - t))
    return statistics.median(rates)


def torchvision_jpeg_rate(folder):
    import torch
    import torchvision
    import torchvision.transforms as T
    torch.set_num_threads(1)
    tf = T.Compose([T.Resize(224), T.RandomCrop(224), T.RandomHorizontalFlip(), T.ToTensor(),
                    T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    loader = torch.utils.data.DataLoader(torchvision.datasets.ImageFolder(folder, tf), batch_size=64, shuffle=True,
                                         num_workers=WORKERS, persistent_workers=WORKERS > 0)
    return median_rate(loader)


def torchvision_rate():
    import numpy as np
    import torch
    import torchvision.transforms as T
    from PIL import Image

    torch.set_num_threads(1)
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, size=(50_000, 32, 32, 3), dtype=np.uint8)  # HWC, as torchvision's CIFAR10
    labels = (np.arange(50_000) % 10).tolist()
    tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                    T.Normalize((125.3 / 255, 123.0 / 255, 113.9 / 255), (63.0 / 255, 62.1 / 255, 66.7 / 255))])

    class Cifar(torch.utils.data.Dataset):
        def __len__(self):
            return len(labels)

        def __getitem__(self, i):
            return tf(Image.fromarray(data[i])), labels[i]

    loader = torch.utils.data.DataLoader(Cifar(), batch_size=128, shuffle=True, num_workers=WORKERS,
                                         persistent_workers=WORKERS > 0)
    return median_rate(loader), torch.__version__


def main():
    folder = jpeg_folder()
    mine = ours(folder)
    theirs, version = torchvision_rate()
    r = mine["loader"]["images_per_s"]
    print(f"CIFAR-shaped loading with augmentation, batch 128, {WORKERS} workers, median of {EPOCHS} epochs; "
          f"PyTorch {version}\n")
    print("| loader | images/s | ratio |")
    print("|---|---|---|")
    print(f"| ours (data::Loader) | {r:,.0f} | {r / theirs:.1f}x |")
    print(f"| torchvision DataLoader | {theirs:,.0f} | 1.0x |")
    if folder:
        j, tj = mine["jpeg"]["images_per_s"], torchvision_jpeg_rate(folder)
        print(f"\nJPEG photos ({folder}), Resize(224) + RandomCrop(224) + flip, batch 64, {WORKERS} workers, "
              f"median of {EPOCHS} epochs\n")
        print("| loader | images/s | ratio |")
        print("|---|---|---|")
        print(f"| ours (data::ImageFolder + Loader) | {j:,.1f} | {j / tj:.2f}x |")
        print(f"| torchvision ImageFolder + DataLoader | {tj:,.1f} | 1.00x |")
    w = mine["wait"]
    print(f"\nA loop whose step takes {w['step_ms']} ms waited {w['mean_wait_ms']:.3f} ms per batch for data "
          f"(over {w['batches']} batches).")


if __name__ == "__main__":
    main()
