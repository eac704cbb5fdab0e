r"""How well `analyze invert` reproduces images: G's own samples (z known) and held-out real
images against a nearest-training-image baseline, and the time per image.

    .venv/bin/python benchmarks/inversion.py --workdir=runs/quality_z/ours_bfloat16 \
        --out=runs/inversion

For the workdir's G (trained on a dataset with a test split, e.g. Fashion-MNIST 32x32):
  * samples: --num samples G(z*) of seed 7; inverted from --starts starts of --steps Adam
    steps, once with pixels alone and once with D's features (--feature_weight): PSNR of
    the reconstruction and the distance of the recovered z to z* (mean |z - z*| per
    coordinate, against that of a random z);
  * real: the first --num test images, inverted the same way: PSNR and SSIM, against the
    nearest training image in pixels (of --max_train) as a baseline: a G that had only
    memorised its data would do no better than that;
  * seconds per image of each inversion (on this machine, sharing its cores with nothing
    else if measured alone).
Writes OUT/inversion.json, OUT/inversion.md and OUT/real_<method>.png (rows of original,
reconstruction, nearest training image).
"""
import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from dcgan_keras import workdir as workdir_lib  # noqa: E402
from dcgan_keras.analysis import invert, outputs  # noqa: E402
from dcgan_keras.exporters import sampling  # noqa: E402
from dcgan_keras.models import latent  # noqa: E402
from dcgan_keras.utils import images as images_lib  # noqa: E402


def ssim(a, b):
    """SSIM per image of [-1, 1] images (tf.image.ssim on [0, 1], its default window)."""
    return tf.image.ssim((tf.constant(a) + 1) / 2, (tf.constant(b) + 1) / 2, 1.0).numpy()


def nearest(images, train, batch=500):
    """The training image nearest in pixels (L2) to each image."""
    flat = train.reshape(len(train), -1)
    norms = (flat ** 2).sum(1)
    found = []
    for i in range(0, len(images), batch):
        q = images[i:i + batch].reshape(-1, flat.shape[1])
        found.append(np.argmin(norms[None] - 2 * q @ flat.T, axis=1))
    return train[np.concatenate(found)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--out", default="runs/inversion")
    parser.add_argument("--num", type=int, default=64)
    parser.add_argument("--starts", type=int, default=4)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--feature_weight", type=float, default=1.0)
    parser.add_argument("--max_train", type=int, default=60000)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    nets = workdir_lib.networks_from_workdir(args.workdir)
    g, d = nets.generator, nets.discriminator
    methods = {"pixels": 0.0, "pixels_and_D_features": args.feature_weight}
    results = {"args": vars(args), "samples": {}, "real": {}}

    z_true = sampling.latents(args.num, 7, g.z_dim, latent.of(g)).numpy()
    own = outputs.generator_fn(g)(z_true)
    z_random = sampling.latents(args.num, 8, g.z_dim, latent.of(g)).numpy()
    results["samples"]["random_z_distance"] = float(np.abs(z_random - z_true).mean())
    results["samples"]["random_z_psnr"] = float(invert.psnr(outputs.generator_fn(g)(z_random),
                                                            own).mean())
    for name, weight in methods.items():
        start = time.perf_counter()
        r = invert.invert(g, d, own, args.starts, args.steps, feature_weight=weight)
        seconds = (time.perf_counter() - start) / args.num
        results["samples"][name] = dict(psnr=float(r.psnr.mean()),
                                        psnr_sd=float(r.psnr.std()),
                                        z_distance=float(np.abs(r.z - z_true).mean()),
                                        seconds_per_image=seconds)
        print(f"samples, {name}: {results['samples'][name]}", flush=True)

    real = np.concatenate(list(outputs.real_batches(
        nets.dataset, g.image_size, g.channels, nets.data_dir or None, nets.preprocess,
        max_examples=args.num, split="test")))[:args.num]
    train = np.concatenate(list(outputs.real_batches(
        nets.dataset, g.image_size, g.channels, nets.data_dir or None, nets.preprocess,
        max_examples=args.max_train)))
    near = nearest(real, train)
    results["real"]["nearest_training_image"] = dict(
        psnr=float(invert.psnr(near, real).mean()), ssim=float(ssim(near, real).mean()),
        train_images=len(train))
    for name, weight in methods.items():
        start = time.perf_counter()
        r = invert.invert(g, d, real, args.starts, args.steps, feature_weight=weight)
        seconds = (time.perf_counter() - start) / args.num
        results["real"][name] = dict(psnr=float(r.psnr.mean()), psnr_sd=float(r.psnr.std()),
                                     ssim=float(ssim(r.reconstructions, real).mean()),
                                     seconds_per_image=seconds)
        rows = np.concatenate([real[:16], r.reconstructions[:16], near[:16]])
        images_lib.write_png(os.path.join(args.out, f"real_{name}.png"),
                             images_lib.make_grid(np.clip(rows, -1, 1), cols=16))
        print(f"real, {name}: {results['real'][name]}", flush=True)

    s, rl = results["samples"], results["real"]
    lines = [f"{args.num} images, {args.starts} starts x {args.steps} Adam steps; PSNR in dB "
             "(images in [0, 1]), mean over images", "",
             "| images | method | PSNR | SSIM | mean abs z - z* | s per image |",
             "|---|---|---|---|---|---|",
             f"| G's samples | a random z | {s['random_z_psnr']:.1f} | | "
             f"{s['random_z_distance']:.3f} | |"]
    for name in methods:
        lines.append(f"| G's samples | {name} | {s[name]['psnr']:.1f} +- "
                     f"{s[name]['psnr_sd']:.1f} | | {s[name]['z_distance']:.3f} | "
                     f"{s[name]['seconds_per_image']:.2f} |")
    n = rl["nearest_training_image"]
    lines.append(f"| real test images | nearest of {n['train_images']} training images | "
                 f"{n['psnr']:.1f} | {n['ssim']:.3f} | | |")
    for name in methods:
        lines.append(f"| real test images | {name} | {rl[name]['psnr']:.1f} +- "
                     f"{rl[name]['psnr_sd']:.1f} | {rl[name]['ssim']:.3f} | | "
                     f"{rl[name]['seconds_per_image']:.2f} |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "inversion.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(args.out, "inversion.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
