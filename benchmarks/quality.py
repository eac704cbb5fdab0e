r"""Sample quality of our DCGAN vs the PyTorch peer on Fashion-MNIST 32x32, per epoch.

    .venv/bin/python benchmarks/quality.py --epochs=5 --out=runs/quality

Both are trained with the paper's recipe (Adam 2e-4/0.5, batch 128, z 100) and the same
widths (G 100 -> 4x4x256 -> 8x8x128 -> 16x16x64 -> 32x32x1), on the same images: the
Fashion-MNIST IDX files zero-padded from 28x28 to 32x32 (`--preprocess=pad`, as the peer
does). Ours is trained once per `--precisions` value (float32 and the bfloat16 fast path by
default, so the speed work's effect on quality is measured too), each with a generator EMA
(`--ema_decay`). After every epoch 10,000 samples of each model are scored against the 10,000 test
images in the feature space of the domain classifier (trained here first), next to the
real-data floor (10,000 train images vs the test images). Writes OUT/quality.json, a
Markdown table OUT/quality.md and side-by-side sample grids OUT/grids_epochE.png.
The peer needs PyTorch: `.venv/bin/pip install torch==2.13.0` (on disk, offline).
"""
import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from dcgan_keras.config import TrainConfig  # noqa: E402
from dcgan_keras.data import datasets  # noqa: E402
from dcgan_keras.evaluation import classifier, feature_nets, sample_quality  # noqa: E402
from dcgan_keras.training import train_lib  # noqa: E402
from dcgan_keras.training.checkpoints import restore_models  # noqa: E402
from dcgan_keras.utils import images as image_utils  # noqa: E402

PEER = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "peers",
                    "peer_torch_fmnist.py")
NUM = 10000


def scores(net, images, real):
    features, probs = net(images)
    return sample_quality.score(features, real, probs, which=("fid", "kid", "is"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", default="runs/quality")
    parser.add_argument("--classifier_epochs", type=int, default=5)
    parser.add_argument("--ema_decay", type=float, default=0.995)
    parser.add_argument("--precisions", default="none,bfloat16",
                        help="comma-separated --mixed_precision values to train ours with "
                             "(none = float32); each gets its own workdir OUT/ours_<value>")
    parser.add_argument("--seed", type=int, default=0, help="our runs' --seed")
    parser.add_argument("--peer", default=PEER)
    parser.add_argument("--skip_peer", action="store_true")
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    clf_dir = os.path.join(out, "classifier")
    if not os.path.exists(os.path.join(clf_dir, feature_nets.CLASSIFIER_FILE)):
        classifier.train_classifier("fashion_mnist", clf_dir, 32, 1, args.classifier_epochs,
                                    preprocess="pad", allow_download=False)
    info = json.load(open(os.path.join(clf_dir, feature_nets.CLASSIFIER_INFO)))
    net = feature_nets.load(clf_dir)
    real = sample_quality.reference_features(net, "fashion_mnist", "test", 32, 1, "pad",
                                             NUM, allow_download=False)
    train_images, _ = datasets.load_numpy(
        datasets.get_source("fashion_mnist", "train", allow_download=False), 32, 1, "pad",
        max_examples=NUM)
    results = {"classifier_test_accuracy": info["test_accuracy"],
               "real_floor": scores(net, train_images, real), "peer": {}, "seconds": {},
               "ema_decay": args.ema_decay}
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    for p in precisions:
        results[f"ours_{p}"], results[f"ours_{p}_ema"] = {}, {}
    print("real data floor:", results["real_floor"], flush=True)

    peer_dir = os.path.join(out, "peer")
    peer = None
    have_peer = all(os.path.exists(os.path.join(peer_dir, f"peer_epoch{e}.npy"))
                    for e in range(1, args.epochs + 1))
    if have_peer:  # samples of an earlier invocation: reuse them
        peer = True
    elif not args.skip_peer:
        start = time.perf_counter()
        peer = subprocess.Popen([sys.executable, args.peer, str(args.epochs), peer_dir])
        # Run the peer alone first: the two must not share the 2 cores while timed.
        peer.wait()
        results["seconds"]["peer"] = round(time.perf_counter() - start)
        if peer.returncode:
            print("peer failed (is torch installed? .venv/bin/pip install torch==2.13.0)")
            peer = None

    grids = {}
    for precision in precisions:
        workdir = os.path.join(out, f"ours_{precision}")
        key = f"ours_{precision}"
        start = time.perf_counter()
        for epoch in range(1, args.epochs + 1):
            config = TrainConfig(dataset="fashion_mnist", image_size=32, channels=1,
                                 preprocess="pad", base_width=64, epochs=epoch,
                                 mixed_precision=precision, ema_decay=args.ema_decay,
                                 seed=args.seed,
                                 allow_download=False, log_every=100)
            result = train_lib.train_and_evaluate(config, workdir)
            ours = sample_quality.generate(result["gan"].generator, NUM, seed=1)
            results[key][epoch] = scores(net, ours, real)
            ema, _, _, _ = restore_models(workdir, generator_key="ema_generator")
            results[key + "_ema"][epoch] = scores(
                net, sample_quality.generate(ema, NUM, seed=1), real)
            grids.setdefault(epoch, []).append(image_utils.make_grid(ours[:64]))
            print(f"epoch {epoch} {key}: {results[key][epoch]} "
                  f"ema {results[key + '_ema'][epoch]}", flush=True)
        results["seconds"][key] = round(time.perf_counter() - start)
    for epoch, row in grids.items():
        if peer:
            theirs = np.load(os.path.join(peer_dir, f"peer_epoch{epoch}.npy"))[..., None]
            results["peer"][epoch] = scores(net, theirs, real)
            row.append(image_utils.make_grid(theirs[:64]))
            print(f"epoch {epoch} peer: {results['peer'][epoch]}", flush=True)
        gap = np.full((row[0].shape[0], 8, 1), 255, np.uint8)
        image_utils.write_png(os.path.join(out, f"grids_epoch{epoch}.png"),
                              np.concatenate(sum([[g, gap] for g in row], [])[:-1], axis=1))
    with open(os.path.join(out, "quality.json"), "w") as f:
        json.dump(results, f, indent=2)
    nan = {"fid": float("nan"), "kid": float("nan"), "kid_std": float("nan")}
    cols = [(f"ours {p}", f"ours_{p}") for p in precisions]
    cols += [(f"ours {p} EMA", f"ours_{p}_ema") for p in precisions] + [("peer", "peer")]
    lines = ["| epoch | " + " | ".join(f"{c} FID | {c} KID" for c, _ in cols) + " |",
             "|---" * (1 + 2 * len(cols)) + "|"]
    for e in range(1, args.epochs + 1):
        cells = []
        for _, key in cols:
            r = results[key].get(e, nan)
            cells += [f"{r['fid']:.1f}", f"{r['kid']:.1f} +- {r['kid_std']:.1f}"]
        lines.append(f"| {e} | " + " | ".join(cells) + " |")
    floor = results["real_floor"]
    lines.append(f"| real data (train vs test) | {floor['fid']:.2f} | {floor['kid']:.2f} |"
                 + " |" * (2 * len(cols) - 2))
    with open(os.path.join(out, "quality.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
