r"""E-GAN against DCGAN on Fashion-MNIST 32x32 at equal D steps, long enough to mean something.

    .venv/bin/python benchmarks/egan_vs_dcgan.py --seeds=0,1 --epochs=5 --minutes=25 \
        --out=runs/egan_vs_dcgan

Per seed, three methods share the nets (G 100 -> 4x4x4w -> 8x8x2w -> 16x16xw -> 32x32x1,
w = --base_width), the paper's Adam, float32, and the data (IDX files zero-padded to 32x32,
`--preprocess=pad`). Every D step of every method takes --d_batch real images and as many
fakes (the authors' image runs: 32):
  * dcgan: the paper's schedule, one D update then one G update (batch --d_batch);
  * dcgan_nd: n_D D updates, then one G update on --d_batch fresh z (`--d_steps`, batch
    --d_batch x n_D): E-GAN's D/G schedule without the evolution;
  * egan: n_D D updates, then one child per mutation from the parent, the fittest kept
    (`--trainer=egan`, batch --d_batch x n_D).
So dcgan_nd and egan make the same D updates on the same images per G update, and
differ only by the evolution. `--methods=egan_q` adds E-GAN with gamma = 0 (the survivor
chosen by quality alone), to see what the diversity term does.

Length: each run trains to --epochs epochs or --minutes minutes of training, whichever
comes first (the table says which), in pieces of 1 / --points_per_epoch epoch. After each
piece it is scored: FID and KID on --num_samples samples against as many test images in
the feature space of the domain classifier (trained first, or --classifier_dir), and the
Inception-style score from the same classifier's class probabilities.

Resumable: each run is a training workdir (OUT/<method>_seed<S>) and a curve file beside
it (curve.json: the points scored so far, with the training seconds and, for E-GAN, the
logged F, F_q and F_d of each child, the wins and `diversity_decided`). A stopped benchmark
continues from them; a longer --epochs or --minutes trains the runs on.

Writes OUT/egan_vs_dcgan.json (every point of every run), OUT/egan_vs_dcgan.md (the last
point of each run, mean +- sd over seeds, and the cost of one G update),
OUT/fid_vs_updates.png and OUT/fid_vs_seconds.png (mean FID over seeds, every method on
one plot) and OUT/samples_seed<S>.png (the last samples, one block per method).
"""
import argparse
import dataclasses
import json
import os
import shutil
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from dcgan_keras.config import TrainConfig  # noqa: E402
from dcgan_keras.data import datasets, pipeline  # noqa: E402
from dcgan_keras.evaluation import sample_quality  # noqa: E402
from dcgan_keras.training import train_lib  # noqa: E402
from dcgan_keras.utils import charts  # noqa: E402
from dcgan_keras.utils import images as image_utils  # noqa: E402
from quality import domain_classifier  # noqa: E402  (benchmarks/quality.py)

METHODS = ("dcgan", "dcgan_nd", "egan", "egan_q")
LABELS = {"dcgan": "DCGAN (1 D step)", "dcgan_nd": "DCGAN (n_D D steps)", "egan": "E-GAN",
          "egan_q": "E-GAN, F_q only"}
DEFAULT_METHODS = ("dcgan", "dcgan_nd", "egan")
TRAIN_EXAMPLES = 60_000
CURVE = "curve.json"


def mean_sd(values):
    values = [v for v in values if v is not None]
    if not values:
        return float("nan"), float("nan")
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def method_config(method, seed, args):
    """The TrainConfig of one method (see the module doc)."""
    common = dict(dataset="fashion_mnist", image_size=32, channels=1, preprocess="pad",
                  base_width=args.base_width, mixed_precision="none", jit_compile="false",
                  allow_download=False, log_every=50, checkpoint_every=10 ** 6,
                  num_sample_images=16, seed=seed, epochs=10 ** 4)
    n_d = args.n_d
    if method == "dcgan":
        return TrainConfig(**common, batch_size=args.d_batch)
    if method == "dcgan_nd":
        return TrainConfig(**common, batch_size=args.d_batch * n_d, d_steps=n_d)
    return TrainConfig(**common, trainer="egan", batch_size=args.d_batch * n_d,
                       egan_d_steps=n_d,
                       egan_gamma=0.0 if method == "egan_q" else args.egan_gamma,
                       egan_fitness_batch=args.egan_fitness_batch)


def load_curve(workdir, config):
    path = os.path.join(workdir, CURVE)
    if not os.path.exists(path):
        return {"config": dataclasses.asdict(config), "points": []}
    with open(path) as f:
        curve = json.load(f)
    # A field added to TrainConfig since the curve was begun counts at its default.
    defaults = dataclasses.asdict(TrainConfig())
    changed = sorted(k for k, v in dataclasses.asdict(config).items()
                     if curve["config"].get(k, defaults[k]) != v)
    if changed:
        raise SystemExit(f"{path} was made with other settings ({', '.join(changed)}): "
                         "pass those, or another --out")
    return curve


def save_curve(workdir, curve):
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, CURVE)
    with open(path + ".tmp", "w") as f:
        json.dump(curve, f, indent=2)
    os.replace(path + ".tmp", path)


def run_method(method, seed, args, net, real, out):
    """Trains one run on in pieces to its length, scoring each piece; returns its curve
    and its last 64 samples."""
    config = method_config(method, seed, args)
    workdir = os.path.join(out, f"{method}_seed{seed}")
    curve = load_curve(workdir, config)
    steps_per_epoch = TRAIN_EXAMPLES // config.batch_size
    target = max(1, round(args.epochs * steps_per_epoch))
    piece = max(1, steps_per_epoch // args.points_per_epoch)
    samples = None
    while True:
        last = curve["points"][-1] if curve["points"] else {"step": 0, "train_seconds": 0.0}
        if last["step"] >= target or last["train_seconds"] >= 60 * args.minutes:
            break
        stop = min(last["step"] + piece, target)
        start = time.perf_counter()
        result = train_lib.train_and_evaluate(dataclasses.replace(config, max_steps=stop),
                                              workdir)
        wall = time.perf_counter() - start
        gan = result["gan"]
        if int(gan.step.numpy()) != stop:
            raise SystemExit(f"{workdir} ended at step {int(gan.step.numpy())}, not {stop}")
        # Training time at the piece's steady rate: start-up, tracing and this scoring are
        # left out (they are paid once per piece here, once per run by a user).
        steady = (stop - last["step"]) * config.batch_size / result["images_per_sec"]
        images = sample_quality.generate(gan.generator, args.num_samples, seed=1)
        features, probs = net(images)
        scores = sample_quality.score(features, real, probs, which=("fid", "kid", "is"))
        point = dict(step=stop, epochs=round(stop / steps_per_epoch, 3),
                     d_updates=stop * (config.d_steps if method == "dcgan_nd" else
                                       config.egan_d_steps if method.startswith("egan")
                                       else 1),
                     train_seconds=round(last["train_seconds"] + steady, 1),
                     wall_seconds=round(wall, 1), images_per_sec=round(result["images_per_sec"], 1),
                     scores={k: float(v) for k, v in scores.items()})
        if method.startswith("egan"):
            point["logs"] = {k: float(v) for k, v in result.items()
                             if k.split("_")[0] in ("F", "Fq", "Fd", "wins")
                             or k in ("selected", "diversity_decided", "d_loss", "g_loss")}
        curve["points"].append(point)
        save_curve(workdir, curve)
        samples = images[:64]
        print(f"{method} seed {seed}: step {stop}/{target} ({point['epochs']} epochs, "
              f"{point['train_seconds']:.0f} s) FID {scores['fid']:.1f} KID "
              f"{1000 * scores['kid']:.1f}e-3 IS {scores['is']:.3f}", flush=True)
    if samples is None:  # finished before: the last samples again
        from dcgan_keras import workdir as workdir_lib
        generator = workdir_lib.restore_models(workdir)[0]
        samples = sample_quality.generate(generator, 64, seed=1)
    last = curve["points"][-1]
    curve["stopped_by"] = "epochs" if last["step"] >= target else "minutes"
    return curve, samples


def averaged(curves, key):
    """(xs, mean FID) over the seeds' points that every seed reached, by point index."""
    n = min(len(c["points"]) for c in curves)
    xs = [float(np.mean([c["points"][i][key] for c in curves])) for i in range(n)]
    ys = [float(np.mean([c["points"][i]["scores"]["fid"] for c in curves])) for i in range(n)]
    return xs, ys


def report(runs, args, accuracy, floor, out):
    lines = [f"Fashion-MNIST 32x32, {args.d_batch} real images per D step, n_D = {args.n_d}, "
             f"w = {args.base_width}, float32. FID, KID x 1000 and IS on {args.num_samples} "
             f"samples vs {args.num_samples} test images (domain classifier, test accuracy "
             f"{accuracy:.3f}); mean +- sd over seeds {args.seeds}; each run to {args.epochs} "
             f"epochs or {args.minutes} min of training, whichever first.", "",
             "| method | stopped by | epochs | G updates | D updates | train s | ms per G "
             "update | FID | KID x 1000 | IS |", "|---|---|---|---|---|---|---|---|---|---|"]
    for method in METHODS:
        curves = list(runs[method].values())
        if not curves:
            continue
        last = [c["points"][-1] for c in curves]
        cell = {name: mean_sd(values) for name, values in (
            ("epochs", [p["epochs"] for p in last]), ("step", [p["step"] for p in last]),
            ("d", [p["d_updates"] for p in last]), ("s", [p["train_seconds"] for p in last]),
            ("ms", [1000 * p["train_seconds"] / p["step"] for p in last]),
            ("fid", [p["scores"]["fid"] for p in last]),
            ("kid", [1000 * p["scores"]["kid"] for p in last]),
            ("is", [p["scores"]["is"] for p in last]))}
        stopped = "/".join(sorted({c["stopped_by"] for c in curves}))
        lines.append(
            f"| {LABELS[method]} | {stopped} | {cell['epochs'][0]:.2f} | {cell['step'][0]:.0f} | "
            f"{cell['d'][0]:.0f} | {cell['s'][0]:.0f} | {cell['ms'][0]:.0f} | "
            f"{cell['fid'][0]:.1f} +- {cell['fid'][1]:.1f} | {cell['kid'][0]:.1f} +- "
            f"{cell['kid'][1]:.1f} | {cell['is'][0]:.3f} +- {cell['is'][1]:.3f} |")
    lines.append(f"| real data (train vs test) | | | | | | | {floor['fid']:.2f} | "
                 f"{1000 * floor['kid']:.2f} | {floor['is']:.3f} |")
    for method in ("egan", "egan_q"):
        egan = [c["points"][-1].get("logs", {}) for c in runs[method].values()]
        if not egan:
            continue
        wins = {k[5:]: sum(int(e.get(k, 0)) for e in egan) for k in egan[0]
                if k.startswith("wins_")}
        decided = sum(int(e.get("diversity_decided", 0)) for e in egan)
        gens = sum(c["points"][-1]["step"] for c in runs[method].values())
        lines += ["", f"{LABELS[method]}: survivors by mutation over all seeds: {wins}; "
                  f"generations where gamma F_d changed the survivor: {decided} of {gens}."]
    for key, name, label in (("step", "fid_vs_updates.png", "generator updates"),
                             ("train_seconds", "fid_vs_seconds.png", "training seconds")):
        series = {LABELS[m]: averaged(list(runs[m].values()), key) for m in METHODS
                  if runs[m]}
        image_utils.write_png(os.path.join(out, name), charts.lines(
            series, title=f"FID (domain classifier, mean over seeds {args.seeds}) against "
            f"{label}", xlabel=label, ylabel="FID", log_y=True))
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--epochs", type=float, default=5)
    parser.add_argument("--minutes", type=float, default=25,
                        help="training minutes per run (steady rate), whichever comes first")
    parser.add_argument("--points_per_epoch", type=int, default=2)
    parser.add_argument("--out", default="runs/egan_vs_dcgan")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                        help=f"of {','.join(METHODS)}: egan_q is E-GAN with gamma = 0 "
                             "(quality alone), to see what the diversity term does")
    parser.add_argument("--d_batch", type=int, default=32,
                        help="real images per D step (the authors' image runs: 32)")
    parser.add_argument("--n_d", type=int, default=TrainConfig().egan_d_steps,
                        help="D steps per generation (E-GAN) / per G update (dcgan_nd)")
    parser.add_argument("--base_width", type=int, default=32)
    parser.add_argument("--num_samples", type=int, default=10_000)
    parser.add_argument("--classifier_epochs", type=int, default=5)
    parser.add_argument("--classifier_dir", default="",
                        help="a trained domain classifier to copy into OUT/classifier")
    parser.add_argument("--egan_gamma", type=float, default=TrainConfig().egan_gamma)
    parser.add_argument("--egan_fitness_batch", type=int,
                        default=TrainConfig().egan_fitness_batch)
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    if args.classifier_dir and not os.path.exists(os.path.join(out, "classifier")):
        shutil.copytree(args.classifier_dir, os.path.join(out, "classifier"))
    net, info = domain_classifier(out, args.classifier_epochs)
    accuracy = info["test_accuracy"]
    real = sample_quality.reference_features(net, "fashion_mnist", "test", 32, 1, "pad",
                                             args.num_samples, allow_download=False)
    source = datasets.get_source("fashion_mnist", "train", allow_download=False)
    floor_images, _ = pipeline.load_numpy(source, 32, 1, "pad", max_examples=args.num_samples)
    floor_features, floor_probs = net(floor_images)
    floor = sample_quality.score(floor_features, real, floor_probs, which=("fid", "kid", "is"))
    print(f"classifier test accuracy {accuracy:.4f}; real-data floor {floor}", flush=True)

    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise SystemExit(f"unknown --methods {unknown}; choose from {', '.join(METHODS)}")
    runs = {m: {} for m in METHODS}
    for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
        blocks = []
        for method in methods:
            runs[method][seed], samples = run_method(method, seed, args, net, real, out)
            blocks.append(image_utils.make_grid(samples))
        gap = np.full((blocks[0].shape[0], 8, blocks[0].shape[2]), 255, np.uint8)
        row = [blocks[0]]
        for block in blocks[1:]:
            row += [gap, block]
        image_utils.write_png(os.path.join(out, f"samples_seed{seed}.png"),
                              np.concatenate(row, axis=1))
    text = report(runs, args, accuracy, floor, out)
    with open(os.path.join(out, "egan_vs_dcgan.json"), "w") as f:
        json.dump(dict(args=vars(args), classifier_test_accuracy=accuracy,
                       real_floor={k: float(v) for k, v in floor.items()}, runs=runs), f,
                  indent=2)
    with open(os.path.join(out, "egan_vs_dcgan.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
