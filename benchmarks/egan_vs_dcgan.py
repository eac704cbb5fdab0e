r"""E-GAN vs DCGAN on Fashion-MNIST 32x32: FID and KID at equal generator updates and at
equal wall-clock time, over several seeds, and the cost of a generation.

    .venv/bin/python benchmarks/egan_vs_dcgan.py --updates=300 --seeds=0,1,2 \
        --out=runs/egan_vs_dcgan

Per seed, three runs share the nets (G 100 -> 4x4x4w -> 8x8x2w -> 16x16xw -> 32x32x1, w =
--base_width), the paper's Adam, float32 and the same images (IDX files zero-padded to
32x32, `--preprocess=pad`); D always trains on --batch real + --batch fake images a step:
  * dcgan: `--updates` steps (one D and one G update each);
  * egan: `--updates` generations (--egan_d_steps D updates, then one child per mutation,
    the fittest kept), i.e. the same number of generator updates along the surviving
    lineage; its batch is --batch x egan_d_steps images, one D batch per D step;
  * dcgan, resumed: trained on for as many steps as take egan's training time at the two
    runs' steady rates (equal wall-clock; start-up and tracing left out).
Each is scored on --num_samples samples against as many test images in the feature space
of the domain classifier (trained here first; `binaries/train_classifier`), next to the
real-data floor (train vs test images). Writes OUT/egan_vs_dcgan.json (every run),
OUT/egan_vs_dcgan.md (mean +- sd over seeds) and OUT/grids_seed<S>.png (dcgan at equal
updates | egan | dcgan at equal time). A finished run is reused, not trained again.
"""
import argparse
import dataclasses
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from dcgan_keras.config import TrainConfig  # noqa: E402
from dcgan_keras.data import datasets, pipeline  # noqa: E402
from dcgan_keras.evaluation import sample_quality  # noqa: E402
from dcgan_keras.training import train_lib  # noqa: E402
from dcgan_keras.utils import images as image_utils  # noqa: E402
from quality import domain_classifier  # noqa: E402  (benchmarks/quality.py)

RESULTS = "run.json"  # in each workdir: {"steps", "train_seconds", "scores", ...}


def mean_sd(values):
    values = [v for v in values if v is not None]
    if not values:
        return float("nan"), float("nan")
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def train(config, workdir, max_steps):
    """Trains `workdir` to `max_steps` (resuming it); returns (gan, seconds of this call,
    the images/s of the last logged window)."""
    start = time.perf_counter()
    result = train_lib.train_and_evaluate(dataclasses.replace(config, max_steps=max_steps),
                                          workdir)
    seconds = time.perf_counter() - start
    if int(result["gan"].step.numpy()) != max_steps:
        raise SystemExit(f"{workdir} ended at step {int(result['gan'].step.numpy())}, "
                         f"not {max_steps}; delete it to train again")
    return result["gan"], seconds, result["images_per_sec"]


def score_run(gan, net, real, num):
    images = sample_quality.generate(gan.generator, num, seed=1)
    features, probs = net(images)
    return sample_quality.score(features, real, probs, which=("fid", "kid")), images[:64]


def run_one(name, config, workdir, steps, net, real, args, seconds_before=0.0):
    """Trains (or reuses) one run and scores it; returns its record."""
    path = os.path.join(workdir, f"{name}_{RESULTS}")
    if os.path.exists(path):
        with open(path) as f:
            record = json.load(f)
        made_with = record.get("egan_d_steps", 2)  # not stored before the default was 3
        if config.trainer == "egan" and made_with != config.egan_d_steps:
            raise SystemExit(f"{path} was measured with --egan_d_steps={made_with}, not "
                             f"{config.egan_d_steps}: pass that, or another --out")
        if record["steps"] == steps:
            print(f"{name}: reused {record}", flush=True)
            return record, np.load(os.path.join(workdir, f"{name}_samples.npy"))
    gan, seconds, ips = train(config, workdir, steps)
    scores, samples = score_run(gan, net, real, args.num_samples)
    record = dict(steps=steps, train_seconds=round(seconds_before + seconds, 1),
                  images_per_sec=round(ips, 1), scores=scores)
    if hasattr(gan, "wins"):
        record["wins"] = dict(zip(gan.mutations, gan.wins.numpy().tolist()))
        record["egan_d_steps"] = config.egan_d_steps
        record["diversity_decided"] = int(gan.diversity_decided.numpy())
    np.save(os.path.join(workdir, f"{name}_samples.npy"), samples)
    with open(path, "w") as f:
        json.dump(record, f, indent=2)
    print(f"{name}: {record}", flush=True)
    return record, samples


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=300, help="generator updates")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", default="runs/egan_vs_dcgan")
    parser.add_argument("--batch", type=int, default=64, help="D's batch (real images)")
    parser.add_argument("--base_width", type=int, default=32)
    parser.add_argument("--num_samples", type=int, default=5000)
    parser.add_argument("--classifier_epochs", type=int, default=2)
    parser.add_argument("--egan_d_steps", type=int, default=TrainConfig().egan_d_steps)
    parser.add_argument("--egan_gamma", type=float, default=TrainConfig().egan_gamma)
    parser.add_argument("--egan_fitness_batch", type=int,
                        default=TrainConfig().egan_fitness_batch)
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    net, info = domain_classifier(out, args.classifier_epochs)
    accuracy = info["test_accuracy"]
    real = sample_quality.reference_features(net, "fashion_mnist", "test", 32, 1, "pad",
                                             args.num_samples, allow_download=False)
    source = datasets.get_source("fashion_mnist", "train", allow_download=False)
    floor_images, _ = pipeline.load_numpy(source, 32, 1, "pad", max_examples=args.num_samples)
    floor = sample_quality.score(net(floor_images)[0], real, which=("fid", "kid"))
    print(f"classifier test accuracy {accuracy:.4f}; real-data floor {floor}", flush=True)

    common = dict(dataset="fashion_mnist", image_size=32, channels=1, preprocess="pad",
                  base_width=args.base_width, mixed_precision="none", jit_compile="false",
                  allow_download=False, log_every=50, checkpoint_every=10 ** 6,
                  num_sample_images=16)
    runs = {"dcgan_updates": {}, "egan": {}, "dcgan_time": {}}
    for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
        dcgan_dir, egan_dir = (os.path.join(out, f"{n}_seed{seed}") for n in ("dcgan", "egan"))
        dcgan_cfg = TrainConfig(**common, seed=seed, batch_size=args.batch)
        egan_cfg = TrainConfig(**common, seed=seed, trainer="egan",
                               batch_size=args.batch * args.egan_d_steps,
                               egan_d_steps=args.egan_d_steps, egan_gamma=args.egan_gamma,
                               egan_fitness_batch=args.egan_fitness_batch)
        d, d_grid = run_one("updates", dcgan_cfg, dcgan_dir, args.updates, net, real, args)
        e, e_grid = run_one("egan", egan_cfg, egan_dir, args.updates, net, real, args)
        # Equal wall-clock: as many DCGAN steps as take the time of E-GAN's generations,
        # from the two runs' steady rates (start-up and tracing left out: they differ).
        ratio = (egan_cfg.batch_size / e["images_per_sec"]) / (args.batch / d["images_per_sec"])
        steps = max(args.updates, round(args.updates * ratio))
        t, t_grid = run_one("time", dcgan_cfg, dcgan_dir, steps, net, real, args,
                            seconds_before=d["train_seconds"])
        runs["dcgan_updates"][seed], runs["egan"][seed], runs["dcgan_time"][seed] = d, e, t
        grids = [image_utils.make_grid(g) for g in (d_grid, e_grid, t_grid)]
        gap = np.full((grids[0].shape[0], 8, grids[0].shape[2]), 255, np.uint8)
        image_utils.write_png(os.path.join(out, f"grids_seed{seed}.png"),
                              np.concatenate([grids[0], gap, grids[1], gap, grids[2]], axis=1))

    results = dict(args=vars(args), classifier_test_accuracy=accuracy, real_floor=floor,
                   runs=runs)
    with open(os.path.join(out, "egan_vs_dcgan.json"), "w") as f:
        json.dump(results, f, indent=2)
    labels = {"dcgan_updates": f"DCGAN, {args.updates} G updates",
              "egan": f"E-GAN, {args.updates} generations",
              "dcgan_time": "DCGAN, E-GAN's wall-clock"}
    lines = [f"FID and KID x 1000 on {args.num_samples} samples vs test images (domain "
             f"classifier, test accuracy {accuracy:.3f}); mean +- sd over seeds "
             f"{args.seeds}", "",
             "| run | G updates | train s | FID | KID x 1000 |", "|---|---|---|---|---|"]
    for key, label in labels.items():
        records = list(runs[key].values())
        fid = mean_sd([r["scores"]["fid"] for r in records])
        kid = mean_sd([1000 * r["scores"]["kid"] for r in records])
        secs = mean_sd([r["train_seconds"] for r in records])
        steps = mean_sd([r["steps"] for r in records])
        lines.append(f"| {label} | {steps[0]:.0f} | {secs[0]:.0f} | {fid[0]:.1f} +- "
                     f"{fid[1]:.1f} | {kid[0]:.1f} +- {kid[1]:.1f} |")
    lines.append(f"| real data (train vs test) | | | {floor['fid']:.2f} | "
                 f"{1000 * floor['kid']:.2f} |")
    # Cost: steady-state seconds per generation vs per DCGAN step (the logger's rate).
    d_step = mean_sd([args.batch / r["images_per_sec"] for r in runs["dcgan_updates"].values()])
    e_gen = mean_sd([args.batch * args.egan_d_steps / r["images_per_sec"]
                     for r in runs["egan"].values()])
    wins = {m: sum(r.get("wins", {}).get(m, 0) for r in runs["egan"].values())
            for m in ("minimax", "heuristic", "least_squares")}
    lines += ["", f"Cost: one E-GAN generation {e_gen[0] * 1000:.0f} ms, one DCGAN step "
              f"{d_step[0] * 1000:.0f} ms ({e_gen[0] / d_step[0]:.1f}x); mutation wins over "
              f"all seeds: {wins}"]
    with open(os.path.join(out, "egan_vs_dcgan.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
