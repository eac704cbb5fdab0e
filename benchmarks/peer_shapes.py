r"""The PyTorch examples-style DCGAN trained on our shapes scenes, to tell the data from our code.

usage: .venv/bin/python benchmarks/peer_shapes.py --colors=random --image_size=32 \
           --epochs=3 --out=runs/peer_shapes32

The peer is the PyTorch DCGAN example's recipe (z ~ N(0, 1) of 100, ConvTranspose /
BatchNorm / ReLU generator, Conv / LeakyReLU discriminator, weights N(0, 0.02), Adam 2e-4
with beta1 0.5, batch 128, one D step then one G step per batch), at 32x32 (4 layers) or
64x64 (5 layers). Its data are the same scenes our `--dataset=shapes|shapes_random` trains
on (data/shapes.py, rendered once into OUT/data_<colors>_<size>.npy). After each epoch it
writes an 8x8 grid of a fixed z (OUT/epoch_E.png) and 10,000 samples (OUT/peer_epochE.npy,
float16 in [-1, 1], channels last) for scoring with our metrics and segmenters.

Needs PyTorch: `.venv/bin/pip install torch==2.13.0` (on disk, offline).
"""
import argparse
import os
import time

import numpy as np


def render(colors, size, out):
    """The 50,000 training scenes as uint8 [N, size, size, 3], cached in `out`."""
    path = os.path.join(out, f"data_{colors}_{size}.npy")
    if not os.path.exists(path):
        from dcgan_keras.data import shapes
        n = shapes.SPLIT_SIZES["train"]
        images = np.empty([n, size, size, 3], np.uint8)
        for start in range(0, n, 5000):
            images[start:start + 5000] = shapes.render_batch(
                range(start, min(n, start + 5000)), size, colors=colors)[0]
            print(f"rendered {min(n, start + 5000)}/{n} scenes", flush=True)
        np.save(path + ".tmp.npy", images)
        os.replace(path + ".tmp.npy", path)
    return np.load(path)


def networks(size, z_dim=100, width=64):
    import torch.nn as nn
    layers = {32: 3, 64: 4}[size]  # stride-2 layers after the 4x4 projection
    g, channels = [], width * 2 ** (layers - 1)
    g += [nn.ConvTranspose2d(z_dim, channels, 4, 1, 0, bias=False), nn.BatchNorm2d(channels),
          nn.ReLU(True)]
    for _ in range(layers - 1):
        g += [nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1, bias=False),
              nn.BatchNorm2d(channels // 2), nn.ReLU(True)]
        channels //= 2
    g += [nn.ConvTranspose2d(channels, 3, 4, 2, 1, bias=False), nn.Tanh()]
    d, channels = [nn.Conv2d(3, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)], width
    for _ in range(layers - 1):
        d += [nn.Conv2d(channels, channels * 2, 4, 2, 1, bias=False),
              nn.BatchNorm2d(channels * 2), nn.LeakyReLU(0.2, True)]
        channels *= 2
    d += [nn.Conv2d(channels, 1, 4, 1, 0, bias=False), nn.Flatten()]

    def init(m):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1, 0.02)
            nn.init.zeros_(m.bias)
    g, d = nn.Sequential(*g), nn.Sequential(*d)
    g.apply(init)
    d.apply(init)
    return g, d


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--colors", default="random", choices=("family", "random"))
    parser.add_argument("--image_size", type=int, default=32, choices=(32, 64))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bf16", action="store_true", help="CPU autocast to bfloat16")
    parser.add_argument("--instance_noise", type=float, default=0.0,
                        help="sigma of Gaussian noise added to D's inputs (real and fake), "
                             "annealed linearly to 0 over the run (Sonderby et al. 2016)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    import torch
    from PIL import Image
    from dcgan_keras.utils import images as image_utils
    torch.manual_seed(args.seed)
    torch.set_num_threads(os.cpu_count())
    data = torch.from_numpy(render(args.colors, args.image_size, args.out)).permute(0, 3, 1, 2)
    g, d = networks(args.image_size)
    og = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    bce = torch.nn.BCEWithLogitsLoss()
    fixed = torch.randn(10000, 100, 1, 1, generator=torch.Generator().manual_seed(1))
    batch = 128
    ones, zeros = torch.ones(batch, 1), torch.zeros(batch, 1)
    total, step = args.epochs * (len(data) // batch), 0

    def noisy(x):
        sigma = args.instance_noise * max(0.0, 1.0 - step / total)
        return x + sigma * torch.randn_like(x) if sigma > 0 else x
    for epoch in range(1, args.epochs + 1):
        perm, start, seen = torch.randperm(len(data)), time.perf_counter(), 0
        g.train()
        d.train()
        for i in range(0, len(data) - batch + 1, batch):
            real = data[perm[i:i + batch]].float().div(127.5).sub(1)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                od.zero_grad()
                fake = g(torch.randn(batch, 100, 1, 1))
                d_loss = (bce(d(noisy(real)).float(), ones)
                          + bce(d(noisy(fake.detach())).float(), zeros))
                d_loss.backward()
                od.step()
                og.zero_grad()
                g_loss = bce(d(noisy(fake)).float(), ones)
                g_loss.backward()
                og.step()
            seen, step = seen + batch, step + 1
            if (i // batch) % 50 == 0:
                print(f"epoch {epoch} step {i // batch} d={d_loss.item():.3f} "
                      f"g={g_loss.item():.3f}", flush=True)
        seconds = time.perf_counter() - start
        g.eval()
        with torch.no_grad():
            samples = torch.cat([g(fixed[j:j + 500]).float() for j in range(0, 10000, 500)])
        samples = samples.permute(0, 2, 3, 1).numpy()
        np.save(os.path.join(args.out, f"peer_epoch{epoch}.npy"), samples.astype(np.float16))
        Image.fromarray(image_utils.make_grid(samples[:64])).save(
            os.path.join(args.out, f"epoch_{epoch}.png"))
        print(f"epoch {epoch} img_per_s={seen / seconds:.1f} seconds={seconds:.0f}", flush=True)


if __name__ == "__main__":
    main()
