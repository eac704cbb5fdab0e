r"""Step-for-step parity of our DCGAN train step with the PyTorch peer's, from equal weights.

    .venv/bin/python benchmarks/peer_parity.py --steps=20

Builds our 32x32x1 DCGAN (base width 64, float32) and the peer's PyTorch networks
(../shared/peers/peer_torch_fmnist.py: the same layers), copies our initial weights into
the peer's, then trains both for --steps steps on the same real batches (Fashion-MNIST
IDX, zero-padded to 32x32) and the same noise (ours, from its (seed, step) stream), with the
peer's update order: D on a real and a fake batch, then G through the updated D with the
same fake batch. After every step it prints, per net, how far the two models' weights are
apart relative to how far they have moved from their common start
(|ours - peer| / |peer - start| over all weights), and the two losses.

If our step is the peer's maths, the losses agree to 3-4 digits for tens of steps and the
weights differ by a small fraction of their update; the fraction grows only as float32
rounding is amplified by training (GAN training is chaotic). A real mismatch (padding,
kernel layout, BatchNorm statistics, Adam) shows as losses that part after a step or two.
Adam's first steps are about lr * sign(gradient), so gradients that are ~0 up to rounding
flip sign between the two: that, not a mismatch, is the few-percent weight difference.
Both put Adam's epsilon on the bias-corrected sqrt(v) (`--adam_epsilon_on=v_hat`, our
default and PyTorch's); with `--adam_epsilon_on=v` (Keras' and Torch7's placement) ours'
epsilon is up to ~32x larger in the first steps, and near-zero gradients move less (with
`--seed=1` D's weights are 0.36% of their update apart after step 1 instead of 0.005%).
Needs PyTorch: `.venv/bin/pip install torch==2.13.0`.
"""
import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from dcgan_keras.data import datasets, pipeline  # noqa: E402
from dcgan_keras.models.dcgan import build_dcgan  # noqa: E402
from dcgan_keras.training import train_lib  # noqa: E402
from dcgan_keras import config as config_lib  # noqa: E402
from dcgan_keras.config import TrainConfig  # noqa: E402


def peer_networks(z_dim, width, channels):
    """The peer's G and D (the PyTorch examples DCGAN at 32x32, no biases)."""
    G = nn.Sequential(
        nn.ConvTranspose2d(z_dim, 4 * width, 4, 1, 0, bias=False), nn.BatchNorm2d(4 * width),
        nn.ReLU(),
        nn.ConvTranspose2d(4 * width, 2 * width, 4, 2, 1, bias=False),
        nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh())
    D = nn.Sequential(
        nn.Conv2d(channels, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
        nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * width),
        nn.LeakyReLU(0.2),
        nn.Conv2d(2 * width, 4 * width, 4, 2, 1, bias=False), nn.BatchNorm2d(4 * width),
        nn.LeakyReLU(0.2),
        nn.Conv2d(4 * width, 1, 4, 1, 0, bias=False), nn.Flatten())
    return G, D


def pairs(gan, G, D):
    """(our variable, the peer's parameter, our array -> the peer's layout) for every
    trainable parameter."""
    g, d = gan.generator, gan.discriminator
    conv = lambda k: k.transpose(3, 2, 0, 1)  # HWIO / HWOI -> OIHW / IOHW
    same = lambda k: k
    out = []
    # G: 100 -> 4x4xC is a dense map onto (h, w, c); the peer's is a 1x1 -> 4x4 deconv.
    proj = g.get_layer("project").kernel
    c = proj.shape[1] // 16
    out.append((proj, G[0].weight, lambda k: k.reshape(-1, 4, 4, c).transpose(0, 3, 1, 2)))
    bns = ["project_bn", "block1_bn", "block2_bn"]
    for bn, i in zip(bns, (1, 4, 7)):
        out += [(g.get_layer(bn).gamma, G[i].weight, same),
                (g.get_layer(bn).beta, G[i].bias, same)]
    for name, i in (("block1_deconv", 3), ("block2_deconv", 6), ("output_deconv", 9)):
        out.append((g.get_layer(name).kernel, G[i].weight, conv))
    for name, i in (("block1_conv", 0), ("block2_conv", 2), ("block3_conv", 5)):
        out.append((d.get_layer(name).kernel, D[i].weight, conv))
    for bn, i in (("block2_bn", 3), ("block3_bn", 6)):
        out += [(d.get_layer(bn).gamma, D[i].weight, same),
                (d.get_layer(bn).beta, D[i].bias, same)]
    logit = d.get_layer("logit")
    out.append((logit.kernel, D[8].weight,
                lambda k: k.reshape(4, 4, -1, 1).transpose(3, 2, 0, 1)))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--adam_epsilon", type=float, default=1e-8, help="both sides'")
    parser.add_argument("--adam_epsilon_on", default="v_hat",
                        choices=config_lib.ADAM_EPSILON_ON,
                        help="ours' epsilon placement: v_hat (the default, the peer's) or v "
                             "(Keras')")
    parser.add_argument("--seed", type=int, default=0, help="initial weights and noise")
    parser.add_argument("--verbose", action="store_true", help="every parameter's diff")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count())
    config = TrainConfig(dataset="fashion_mnist", image_size=32, channels=1, preprocess="pad",
                         base_width=args.width, mixed_precision="none", jit_compile=False,
                         adam_epsilon=args.adam_epsilon, adam_epsilon_on=args.adam_epsilon_on)
    keras.utils.set_random_seed(args.seed)
    gan = build_dcgan(image_size=32, channels=1, base_width=args.width, seed=args.seed)
    d_opt, g_opt = train_lib.make_optimizers(config, "none")
    gan.compile(d_optimizer=d_opt, g_optimizer=g_opt)
    G, D = peer_networks(gan.z_dim, args.width, 1)
    params = pairs(gan, G, D)
    assert len(params) == sum(1 for _ in G.parameters()) + sum(1 for _ in D.parameters())
    with torch.no_grad():
        for ours, theirs, layout in params:
            theirs.copy_(torch.from_numpy(layout(np.asarray(ours.numpy()))))
    start = [theirs.detach().clone().numpy() for _, theirs, _ in params]
    in_g = [any(ours is v for v in gan.generator.trainable_variables) for ours, _, _ in params]
    og = torch.optim.Adam(G.parameters(), config.learning_rate, betas=(config.beta1, 0.999),
                          eps=args.adam_epsilon)
    od = torch.optim.Adam(D.parameters(), config.learning_rate, betas=(config.beta1, 0.999),
                          eps=args.adam_epsilon)
    bce = nn.BCEWithLogitsLoss()

    source = datasets.get_source("fashion_mnist", "train", allow_download=False)
    ds = pipeline.train_dataset(source, 32, 1, 128, seed=0, preprocess_mode="pad")
    step_fn = tf.function(gan.train_step)
    print("step | weights apart / moved: G, D | our d, g loss | peer d, g loss")
    for step, real in zip(range(1, args.steps + 1), ds):
        z = gan.noise(128).numpy()
        gan.reset_metrics()
        logs = step_fn(real)
        x = torch.from_numpy(real.numpy().transpose(0, 3, 1, 2).copy())
        od.zero_grad()
        fake = G(torch.from_numpy(z).view(128, -1, 1, 1))
        dl = bce(D(x), torch.ones(128, 1)) + bce(D(fake.detach()), torch.zeros(128, 1))
        dl.backward()
        od.step()
        og.zero_grad()
        gl = bce(D(fake), torch.ones(128, 1))
        gl.backward()
        og.step()
        apart = {True: 0.0, False: 0.0}
        moved = {True: 0.0, False: 0.0}
        for (ours, theirs, layout), b0, net in zip(params, start, in_g):
            a = layout(np.asarray(ours.numpy()))
            b = theirs.detach().numpy()
            apart[net] += np.sum((a - b) ** 2)
            moved[net] += np.sum((b - b0) ** 2)
            if args.verbose:
                print(f"     {ours.path:30s} apart {np.linalg.norm(a - b):.2e} "
                      f"moved {np.linalg.norm(b - b0):.2e}")
        diffs = {k: np.sqrt(apart[n] / moved[n]) for k, n in (("G", True), ("D", False))}
        print(f"{step:4d} | {diffs['G']:.2e} {diffs['D']:.2e} | "
              f"{float(logs['d_loss']):.5f} {float(logs['g_loss']):.5f} | "
              f"{dl.item():.5f} {gl.item():.5f}", flush=True)


if __name__ == "__main__":
    main()
