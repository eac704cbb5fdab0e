"""The PyTorch peer (the PyTorch DCGAN example's 64x64 nets, ngf = ndf = 64, z = 100) timed
on a CUDA GPU, for benchmarks/gpu_check.sh: the same work per batch as ours (one D step on
a real and a fake batch, one G step through the updated D), float32 or float16 autocast
with a GradScaler. Prints one line ending in img_per_s=N, like ../shared/peers.

    RES=64 BATCH=128 STEPS=200 [AMP=1] python benchmarks/peer_torch_cuda.py
"""
import os
import time

import torch
from torch import nn

RES = int(os.environ.get("RES", 64))
BATCH = int(os.environ.get("BATCH", 128))
STEPS = int(os.environ.get("STEPS", 200))
AMP = os.environ.get("AMP") == "1"
Z = 100


def generator():
    k = RES // 16
    layers, width = [nn.ConvTranspose2d(Z, 512, k, 1, 0, bias=False)], 512
    while width > 64:
        layers += [nn.BatchNorm2d(width), nn.ReLU(True),
                   nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False)]
        width //= 2
    layers += [nn.BatchNorm2d(64), nn.ReLU(True), nn.ConvTranspose2d(64, 3, 4, 2, 1, bias=False),
               nn.Tanh()]
    return nn.Sequential(*layers)


def discriminator():
    layers, width = [nn.Conv2d(3, 64, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)], 64
    while width < 512:
        layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2),
                   nn.LeakyReLU(0.2, True)]
        width *= 2
    layers += [nn.Conv2d(512, 1, RES // 16, 1, 0, bias=False), nn.Flatten()]
    return nn.Sequential(*layers)


def main():
    if not torch.cuda.is_available():
        raise SystemExit("peer_torch_cuda: no CUDA device")
    dev = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    g, d = generator().to(dev), discriminator().to(dev)
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    scaler_g = torch.amp.GradScaler("cuda", enabled=AMP)
    scaler_d = torch.amp.GradScaler("cuda", enabled=AMP)
    bce = nn.BCEWithLogitsLoss()
    real = torch.rand(BATCH, 3, RES, RES, device=dev) * 2 - 1
    ones = torch.ones(BATCH, 1, device=dev)
    zeros = torch.zeros(BATCH, 1, device=dev)

    def step():
        with torch.autocast("cuda", dtype=torch.float16, enabled=AMP):
            fake = g(torch.randn(BATCH, Z, 1, 1, device=dev))
            d_loss = bce(d(real), ones) + bce(d(fake.detach()), zeros)
        opt_d.zero_grad(set_to_none=True)
        scaler_d.scale(d_loss).backward()
        scaler_d.step(opt_d)
        scaler_d.update()
        with torch.autocast("cuda", dtype=torch.float16, enabled=AMP):
            g_loss = bce(d(fake), ones)
        opt_g.zero_grad(set_to_none=True)
        scaler_g.scale(g_loss).backward()
        scaler_g.step(opt_g)
        scaler_g.update()

    for _ in range(10):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(STEPS):
        step()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    print(f"torch_cuda_peer res={RES} batch={BATCH} amp={AMP} img_per_s={BATCH * STEPS / seconds:.1f}")


if __name__ == "__main__":
    main()
