r"""Sample quality of our DCGAN vs the PyTorch peer on Fashion-MNIST 32x32, per epoch.

    .venv/bin/python benchmarks/quality.py --epochs=5 --out=runs/quality

Both are trained with the paper's recipe (Adam 2e-4/0.5, batch 128, z 100) and the same
widths (G 100 -> 4x4x256 -> 8x8x128 -> 16x16x64 -> 32x32x1), on the same images: the
Fashion-MNIST IDX files zero-padded from 28x28 to 32x32 (`--preprocess=pad`, as the peer
does). Ours is trained once per `--precisions` value (float32 and the bfloat16 fast path by
default, so the speed work's effect on quality is measured too), each with a generator EMA
(`--ema_decay`). After every epoch 10,000 samples of each model are scored against the 10,000 test
images in the feature space of the domain classifier (trained here first), next to the
real-data floor (10,000 train images vs the test images).

GAN runs differ from seed to seed by about as much as two implementations do, so
`--seeds=0,1,2` trains every model once per seed: ours with `--seed`, the peer with its
`torch.manual_seed` offset by the seed (through a wrapper; seed 0 is its script as is).
The table gives each column's mean FID over seeds with its standard deviation.
Writes OUT/quality.json (every run), a Markdown table OUT/quality.md and side-by-side
sample grids of the first seed, OUT/grids_epochE.png.
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

from dcgan_keras import config as config_lib  # noqa: E402
from dcgan_keras.config import TrainConfig  # noqa: E402
from dcgan_keras.data import datasets, pipeline  # noqa: E402
from dcgan_keras.evaluation import classifier, feature_nets, sample_quality  # noqa: E402
from dcgan_keras.training import train_lib  # noqa: E402
from dcgan_keras.workdir import restore_models  # noqa: E402
from dcgan_keras.utils import images as image_utils  # noqa: E402

PEER = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "peers",
                    "peer_torch_fmnist.py")
NUM = 10000
# Runs the peer script (argv[2:]) with torch.manual_seed(s) turned into
# torch.manual_seed(s + argv[1]); its fixed evaluation noise (a torch.Generator) stays.
PEER_SEED_WRAPPER = (
    "import runpy, sys, torch\n"
    "offset, manual_seed = int(sys.argv[1]), torch.manual_seed\n"
    "torch.manual_seed = lambda s: manual_seed(s + offset)\n"
    "sys.argv = sys.argv[2:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n")


def run_peer(peer, seed, epochs, out_dir):
    """Trains the peer for `epochs` with seed offset `seed` unless its samples are in
    `out_dir` already; returns the seconds it took (0 if reused), or None if it failed."""
    if all(os.path.exists(os.path.join(out_dir, f"peer_epoch{e}.npy"))
           for e in range(1, epochs + 1)):
        return 0
    command = [sys.executable, peer, str(epochs), out_dir]
    if seed:
        command = [sys.executable, "-c", PEER_SEED_WRAPPER, str(seed)] + command[1:]
    start = time.perf_counter()
    if subprocess.run(command).returncode:
        print("peer failed (is torch installed? .venv/bin/pip install torch==2.13.0)")
        return None
    return round(time.perf_counter() - start)


# Ours' choices whose non-default values get a workdir suffix, with the value a workdir from
# before the choice existed was trained with.
VARIANTS = {"adam_epsilon_on": "v", "z_distribution": "normal"}
DEFAULTS = {name: getattr(TrainConfig(), name) for name in VARIANTS}
SCORES_FILE = "quality_scores.json"  # in each of our workdirs: {epoch: [G, EMA G] scores}
SAMPLES_FILE = "quality_samples_epoch"  # + E.npy: the first 64 samples, for the grids


def load_scores(workdir):
    """{epoch: (scores, EMA scores)} an earlier invocation measured for this workdir. A
    trained workdir cannot be scored again at an earlier epoch (it resumes past it)."""
    path = os.path.join(workdir, SCORES_FILE)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return {int(e): tuple(v) for e, v in json.load(f).items()}


def save_scores(workdir, done, epoch, samples):
    np.save(os.path.join(workdir, f"{SAMPLES_FILE}{epoch}.npy"), samples)
    tmp = os.path.join(workdir, SCORES_FILE + ".tmp")
    with open(tmp, "w") as f:
        json.dump({str(e): list(v) for e, v in done.items()}, f)
    os.replace(tmp, os.path.join(workdir, SCORES_FILE))


def check_variants(workdir, chosen):
    """Refuses a workdir trained with another Adam epsilon placement or prior of z than
    `chosen` ({name: value}); workdirs from before a flag have none in their config.json
    and trained with its VARIANTS value."""
    path = config_lib.config_path(workdir)
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        for name, value in chosen.items():
            if saved.get(name, VARIANTS[name]) != value:
                raise SystemExit(f"{workdir} was trained with --{name}="
                                 f"{saved.get(name, VARIANTS[name])}, not {value}: use "
                                 "another --out or delete the workdir")


def mean_sd(runs, epoch, metric):
    values = [r[epoch][metric] for r in runs.values() if epoch in r]
    if not values:
        return float("nan"), float("nan"), 0
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, \
        len(values)


def domain_classifier(out, epochs):
    """The Fashion-MNIST 32x32 (pad) classifier in OUT/classifier, trained first if missing;
    returns (feature net, its info dict)."""
    clf_dir = os.path.join(out, "classifier")
    if not os.path.exists(os.path.join(clf_dir, feature_nets.CLASSIFIER_FILE)):
        classifier.train_classifier("fashion_mnist", clf_dir, 32, 1, epochs,
                                    preprocess="pad", allow_download=False)
    with open(os.path.join(clf_dir, feature_nets.CLASSIFIER_INFO)) as f:
        info = json.load(f)
    return feature_nets.load(clf_dir), info


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
    parser.add_argument("--seeds", default="0",
                        help="comma-separated seeds: each model is trained once per seed")
    parser.add_argument("--adam_epsilon_on", default=DEFAULTS["adam_epsilon_on"],
                        choices=config_lib.ADAM_EPSILON_ON,
                        help="ours' Adam epsilon placement (v_hat, the default, is the paper's "
                             "code's and the peer's); v runs get their own workdirs "
                             "OUT/ours_<precision>_v")
    parser.add_argument("--z_distribution", default=DEFAULTS["z_distribution"],
                        choices=config_lib.Z_DISTRIBUTIONS,
                        help="ours' prior of z (uniform, the default, is the paper's; the "
                             "peer draws N(0, 1) as PyTorch's example); normal runs get "
                             "their own workdirs OUT/ours_<precision>_normal")
    parser.add_argument("--peer", default=PEER)
    parser.add_argument("--skip_peer", action="store_true")
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    net, info = domain_classifier(out, args.classifier_epochs)
    real = sample_quality.reference_features(net, "fashion_mnist", "test", 32, 1, "pad",
                                             NUM, allow_download=False)
    train_source = datasets.get_source("fashion_mnist", "train", allow_download=False)
    train_images, _ = pipeline.load_numpy(train_source, 32, 1, "pad", max_examples=NUM)
    results = {"classifier_test_accuracy": info["test_accuracy"],
               "real_floor": scores(net, train_images, real), "seconds": {},
               "ema_decay": args.ema_decay}
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    # OUR[p]: the run key and workdir name of ours at precision p.
    chosen = {name: getattr(args, name) for name in VARIANTS}
    other = [value for name, value in chosen.items() if value != DEFAULTS[name]]
    OUR = {p: "_".join([f"ours_{p}", *other]) for p in precisions}
    keys = [OUR[p] for p in precisions] + [OUR[p] + "_ema" for p in precisions]
    if not args.skip_peer:
        keys.append("peer")
    runs = results["runs"] = {key: {} for key in keys}
    print("real data floor:", results["real_floor"], flush=True)

    def suffix(seed):
        return "" if seed == 0 else f"_seed{seed}"

    grids = {}
    if not args.skip_peer:
        # The peer runs alone: the two must not share the 2 cores while timed.
        for seed in seeds:
            peer_dir = os.path.join(out, "peer" + suffix(seed))
            seconds = run_peer(args.peer, seed, args.epochs, peer_dir)
            if seconds is None:
                keys.remove("peer")
                del runs["peer"]
                break
            results["seconds"][f"peer{suffix(seed)}"] = seconds
            runs["peer"][seed] = {}
            for epoch in range(1, args.epochs + 1):
                theirs = np.load(os.path.join(peer_dir, f"peer_epoch{epoch}.npy"))[..., None]
                runs["peer"][seed][epoch] = scores(net, theirs, real)
                if seed == seeds[0]:
                    grids.setdefault(epoch, {})["peer"] = image_utils.make_grid(theirs[:64])
                print(f"epoch {epoch} peer seed {seed}: {runs['peer'][seed][epoch]}",
                      flush=True)

    steps_per_epoch = train_source.num_examples // TrainConfig().batch_size
    for precision in precisions:
        key = OUR[precision]
        for seed in seeds:
            workdir = os.path.join(out, key + suffix(seed))
            runs[key][seed], runs[key + "_ema"][seed] = {}, {}
            check_variants(workdir, chosen)
            done = load_scores(workdir)
            start = time.perf_counter()
            for epoch in range(1, args.epochs + 1):
                if epoch in done:  # scored by an earlier invocation: the model is past it
                    runs[key][seed][epoch], runs[key + "_ema"][seed][epoch] = done[epoch]
                    samples = os.path.join(workdir, f"{SAMPLES_FILE}{epoch}.npy")
                    if seed == seeds[0] and os.path.exists(samples):
                        grids.setdefault(epoch, {})[key] = image_utils.make_grid(
                            np.load(samples))
                    continue
                config = TrainConfig(dataset="fashion_mnist", image_size=32, channels=1,
                                     preprocess="pad", base_width=64, epochs=epoch,
                                     mixed_precision=precision, ema_decay=args.ema_decay,
                                     adam_epsilon_on=args.adam_epsilon_on,
                                     z_distribution=args.z_distribution,
                                     seed=seed, allow_download=False, log_every=100)
                result = train_lib.train_and_evaluate(config, workdir)
                step = int(result["gan"].step)
                if step != epoch * steps_per_epoch:
                    raise SystemExit(
                        f"{workdir} is at step {step}, not at the end of epoch {epoch} "
                        f"({epoch * steps_per_epoch}), and its scores for epoch {epoch} are "
                        f"not in {SCORES_FILE}: delete the workdir to train it again")
                ours = sample_quality.generate(result["gan"].generator, NUM, seed=1)
                runs[key][seed][epoch] = scores(net, ours, real)
                ema, _, _, _ = restore_models(workdir, generator_key="ema_generator")
                runs[key + "_ema"][seed][epoch] = scores(
                    net, sample_quality.generate(ema, NUM, seed=1), real)
                done[epoch] = (runs[key][seed][epoch], runs[key + "_ema"][seed][epoch])
                save_scores(workdir, done, epoch, ours[:64])
                if seed == seeds[0]:
                    grids.setdefault(epoch, {})[key] = image_utils.make_grid(ours[:64])
                print(f"epoch {epoch} {key} seed {seed}: {runs[key][seed][epoch]} "
                      f"ema {runs[key + '_ema'][seed][epoch]}", flush=True)
            results["seconds"][key + suffix(seed)] = round(time.perf_counter() - start)

    # Grids: ours per precision, then the peer, left to right.
    for epoch, row in grids.items():
        row = [row[k] for k in [OUR[p] for p in precisions] + ["peer"] if k in row]
        gap = np.full((row[0].shape[0], 8, 1), 255, np.uint8)
        image_utils.write_png(os.path.join(out, f"grids_epoch{epoch}.png"),
                              np.concatenate(sum([[g, gap] for g in row], [])[:-1], axis=1))
    with open(os.path.join(out, "quality.json"), "w") as f:
        json.dump(results, f, indent=2)
    label = {p: " ".join([f"ours {p}", *other]) for p in precisions}
    names = {OUR[p]: label[p] for p in precisions}
    names.update({OUR[p] + "_ema": label[p] + " EMA" for p in precisions})
    names["peer"] = "peer"
    sd = len(seeds) > 1
    lines = [f"FID (KID x 1000) per epoch, 10,000 samples; {len(seeds)} seed(s) "
             f"({args.seeds})" + ("; mean +- sd over seeds" if sd else ""), "",
             "| epoch | " + " | ".join(f"{names[k]} FID | {names[k]} KID" for k in keys)
             + " |", "|---" * (1 + 2 * len(keys)) + "|"]
    for e in range(1, args.epochs + 1):
        cells = []
        for key in keys:
            fid, fid_sd, _ = mean_sd(runs[key], e, "fid")
            kid, kid_sd, _ = mean_sd(runs[key], e, "kid")
            cells += [f"{fid:.1f}" + (f" +- {fid_sd:.1f}" if sd else ""),
                      f"{kid:.1f}" + (f" +- {kid_sd:.1f}" if sd else "")]
        lines.append(f"| {e} | " + " | ".join(cells) + " |")
    floor = results["real_floor"]
    lines.append(f"| real data (train vs test) | {floor['fid']:.2f} | {floor['kid']:.2f} |"
                 + " |" * (2 * len(keys) - 2))
    with open(os.path.join(out, "quality.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
