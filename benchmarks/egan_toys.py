r"""E-GAN and its three objectives alone on the paper's 2-D toy mixtures (issue 27).

    PYTHONPATH=. .venv/bin/python benchmarks/egan_toys.py --seeds=0,1,2 \
        --minutes_per_run=5 --out=runs/egan_toys

Wang et al. 2018 (arXiv:1803.00657, section 5.1) claim that on mixtures of 8 Gaussians on
a ring and 25 on a grid E-GAN covers every mode where single objectives miss some. Per
mixture and seed, four runs share the networks, their initial weights, the real batches
and the number of D updates:
  * egan: E-GAN with the mutations minimax, heuristic and least-squares, mu = 1, one D
    update per generation (kD = 1), gamma = 2 (see below), fitness batch 256;
  * minimax, heuristic (non-saturating) and least_squares: a plain GAN (`DCGAN` with that
    `generator_loss`), one D and one G update per step.

From the authors' toys (WANG-Chaoyue/EvolutionaryGAN, toys/train_toy_8G.py and
train_toy_25G.py, models/models_uncond.py, dataset/datasets.py), kept here: G 2 -> 512 ->
512 -> 512 -> 2 (ReLU, linear output); D 2 -> 512 -> 512 (batch norm before its ReLU, no
bias) -> 512 -> 1; weights N(0, 0.02), biases 0; z of 2 dims ~ U(-1, 1); batch 64; Adam lr
1e-4 for both nets, beta1 0.5 for G and 0 for D, epsilon 1e-8 on sqrt(v) (Lasagne's);
fitness batch (ntf) 256; kD = 1; data: 8 Gaussians of sd 0.02 on a circle of radius 2,
divided by 1.414, and 25 of sd 0.05 at (2i, 2j), i, j in -2..2, divided by 2.828. Their
F = F_q - beta log ||grad||^2 with beta = 1 is F_q + gamma F_d with gamma = 2 in our
F_d = -log ||grad||: the toy code's value, not the CIFAR-10 code's 0.004.

Where ours differs, and why:
  * Length: the authors run 100,000 generations (N_up), hours per run on 2 shared cores.
    Unless --updates is given, every run of a mixture and seed takes U updates, U the
    largest multiple of --checkpoints that lets E-GAN (the slowest method) finish in
    --minutes_per_run at the speed measured on the first mixture (and at most 100,000).
    The output says which U ran and why.
  * E-GAN is the library's `EGAN`, Algorithm 1's order (D step, then variation) where the
    toy code updates G first; each child starts from its parent's Adam state where the toy
    code keeps one Adam state per mutation; the mutations carry the paper's factors (1/2
    for minimax and heuristic), which the toy code leaves out. D's fakes are new samples
    of the parent rather than the selected child's evaluation samples.
  * The data are i.i.d. draws (mode uniform, then Gaussian noise) from a seed and the
    batch index, so every method sees the same batches; the toy 25-mode code shuffles 20
    points of each mode and takes 64.
  * D ends in a logit (the losses take logits) rather than a sigmoid; the same model.

Scores, at --checkpoints evenly spaced points of training, on 10,000 samples of G (the
selected parent for E-GAN) from one fixed z per seed: a sample is high quality when it
lies within 3 sd (Euclidean) of a mode's centre; a mode is covered when at least
MIN_COUNT = 200 of the 10,000 samples are high quality samples of it (2%: half a mode's
share on the 25-grid, a sixth on the ring). Chance does not reach it: a G that spreads its
samples evenly along the ring through the 8 centres (as early training does) puts about
95 in each 3-sd disc, one spread over the lines of the grid about 75, one spread over the
square of the data about 10. For E-GAN also: the share of generations whose selection the
diversity term decided (`diversity_decided`) and the mutation win counts. Writes
OUT/egan_toys.json, OUT/egan_toys.md (mean +- sd over seeds) and OUT/egan_toys_<8|25>.png
(one row per method, one column per checkpoint, the first seed). A finished run (OUT/runs/)
is reused when started again with the same settings.

Measured (docs/benchmarks.md, "E-GAN on the paper's toy mixtures (issue 27)"): on one
core an E-GAN generation takes about 103 ms, so the default budget gives 2,905 updates per
run; at that budget (both mixtures, 3 seeds) the claim is not reproduced: on the ring the
heuristic GAN alone covers 8.0 +- 0 modes, E-GAN 7.7 +- 0.6, least-squares 7.3, minimax
4.3; no method reaches a grid mode.
"""
import argparse
import dataclasses
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from dcgan_keras.evolution import EGAN  # noqa: E402
from dcgan_keras.models import DCGAN  # noqa: E402
from dcgan_keras.models.adam import Adam  # noqa: E402
from dcgan_keras.utils import files  # noqa: E402
from dcgan_keras.utils import images as image_utils  # noqa: E402

AUTHORS_UPDATES = 100_000  # N_up in the toy scripts
AUTHORS = dict(width=512, z_dim=2, batch=64, lr=1e-4, g_beta1=0.5, d_beta1=0.0,
               gamma=2.0, fitness_batch=256)
NUM_SAMPLES = 10_000
MIN_COUNT = 200  # of NUM_SAMPLES samples within 3 sd of a mode: the mode is covered
# Method -> DCGAN generator_loss (None: E-GAN).
METHODS = {"egan": None, "minimax": "minimax", "heuristic": "nonsaturating",
           "least_squares": "least_squares"}


@dataclasses.dataclass(frozen=True)
class Mixture:
    centres: np.ndarray  # [modes, 2]
    std: float  # of each (isotropic) component


def _ring():
    angles = np.arange(8) * np.pi / 4
    return Mixture(2.0 * np.stack([np.cos(angles), np.sin(angles)], 1) / 1.414, 0.02 / 1.414)


def _grid():
    steps = np.arange(-2, 3)
    centres = np.stack(np.meshgrid(2.0 * steps, 2.0 * steps, indexing="ij"), -1)
    return Mixture(centres.reshape(-1, 2) / 2.828, 0.05 / 2.828)


MIXTURES = {"8": _ring(), "25": _grid()}


def real_batch(mixture, seed, index, size):
    """`size` points of `mixture` [size, 2], a pure function of (seed, index)."""
    centres = tf.constant(mixture.centres, tf.float32)
    seed, index = tf.cast(seed, tf.int64), tf.cast(index, tf.int64)
    which = tf.random.stateless_uniform([size], tf.stack([seed, 2 * index]), 0,
                                        len(mixture.centres), dtype=tf.int64)
    noise = tf.random.stateless_normal([size, 2], tf.stack([seed, 2 * index + 1]))
    return tf.gather(centres, which) + mixture.std * noise


def mode_stats(samples, mixture, min_count=MIN_COUNT):
    """Modes covered and the high-quality fraction of `samples` [n, 2] (see the module
    doc): {"modes", "high_quality", "counts" (high-quality samples per mode)}."""
    samples = np.asarray(samples, np.float64)
    distance = np.linalg.norm(samples[:, None, :] - mixture.centres[None], axis=-1)
    close = np.nan_to_num(distance, nan=np.inf).min(1) <= 3 * mixture.std  # [n]
    counts = np.bincount(distance[close].argmin(1), minlength=len(mixture.centres))
    return {"modes": int((counts >= min_count).sum()),
            "high_quality": float(close.mean()) if len(samples) else 0.0,
            "counts": counts.tolist()}


def mlp(inputs, outputs, width, name, batch_norm_layer=None):
    """3 hidden ReLU layers of `width` (the toys' nets), weights N(0, 0.02), biases 0;
    the hidden layer `batch_norm_layer` normalises before its ReLU, without a bias."""
    init = keras.initializers.RandomNormal(stddev=0.02)
    x = keras.Input((inputs,), name=f"{name}_in")
    h = x
    for i in range(3):
        norm = i == batch_norm_layer
        h = keras.layers.Dense(width, use_bias=not norm, kernel_initializer=init,
                               name=f"{name}_fc{i}")(h)
        if norm:  # Lasagne's batch_norm: alpha 0.1 (momentum 0.9), epsilon 1e-4
            h = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-4,
                                                name=f"{name}_bn{i}")(h)
        h = keras.layers.ReLU(name=f"{name}_relu{i}")(h)
    out = keras.layers.Dense(outputs, kernel_initializer=init, name=f"{name}_out")(h)
    return keras.Model(x, out, name=name)


def build(method, seed, args):
    """The compiled GAN of `method`; the initial weights depend on the seed only."""
    keras.utils.set_random_seed(seed)
    generator = mlp(args.z_dim, 2, args.width, "generator")
    discriminator = mlp(2, 1, args.width, "discriminator", batch_norm_layer=1)
    if METHODS[method] is None:
        gan = EGAN(generator, discriminator, seed=seed, d_steps=1, gamma=args.gamma,
                   fitness_batch=args.fitness_batch, z_distribution="uniform")
    else:
        gan = DCGAN(generator, discriminator, seed=seed, generator_loss=METHODS[method],
                    z_distribution="uniform")
    adam = dict(learning_rate=args.lr, epsilon=1e-8, epsilon_on="v")
    gan.compile(d_optimizer=Adam(beta_1=AUTHORS["d_beta1"], **adam),
                g_optimizer=Adam(beta_1=AUTHORS["g_beta1"], **adam),
                jit_compile=args.jit, steps_per_execution=args.steps_per_execution)
    return gan


def train(gan, mixture, seed, start, stop, batch):
    """Trains on real batches start..stop-1 of the (mixture, seed) stream."""
    data = tf.data.Dataset.range(start, stop).map(
        lambda i: real_batch(mixture, seed, i, batch)).prefetch(4)
    gan.fit(data, epochs=1, verbose=0)


def run_one(mixture_name, method, seed, updates, args, out):
    """Trains (or reuses) one run; returns (record, samples [checkpoints, n, 2])."""
    settings = {k: getattr(args, k) for k in ("width", "z_dim", "batch", "lr", "gamma",
                                              "fitness_batch", "checkpoints")}
    name = os.path.join(out, "runs", f"{mixture_name}_{method}_seed{seed}")
    if files.exists(name + ".json"):
        record = files.read_json(name + ".json")
        if record["updates"] == updates and record["settings"] == settings:
            print(f"[{mixture_name} {method} seed {seed}] reused", flush=True)
            return record, np.load(name + ".npz")["samples"]
    mixture = MIXTURES[mixture_name]
    gan = build(method, seed, args)
    z = np.random.default_rng(10_000 + seed).uniform(-1, 1, (NUM_SAMPLES, args.z_dim))
    record = dict(updates=updates, settings=settings, checkpoints=[])
    samples, start, seconds = [], 0, 0.0
    for k in range(1, args.checkpoints + 1):
        stop = updates * k // args.checkpoints
        began = time.perf_counter()
        train(gan, mixture, seed, start, stop, args.batch)
        seconds += time.perf_counter() - began
        points = gan.generator(z.astype("float32"), training=False).numpy()
        point = dict(update=stop, seconds=round(seconds, 1), **mode_stats(points, mixture))
        if METHODS[method] is None:
            point.update(diversity_decided=int(gan.diversity_decided.numpy()),
                         wins=dict(zip(gan.mutations, gan.wins.numpy().tolist())))
        record["checkpoints"].append(point)
        samples.append(points[:args.plot_points])
        start = stop
        print(f"[{mixture_name} {method} seed {seed}] {stop}/{updates} updates, "
              f"{seconds:.0f} s: modes {point['modes']}/{len(mixture.centres)}, high "
              f"quality {point['high_quality']:.3f}", flush=True)
    record.update(record["checkpoints"][-1])
    record.pop("update")
    if METHODS[method] is None:
        record["diversity_share"] = record["diversity_decided"] / updates
    files.write_npz(name + ".npz", samples=np.stack(samples))
    files.write_json(name + ".json", record)
    return record, np.stack(samples)


def seconds_per_generation(args):
    """E-GAN's steady seconds per generation on the first mixture (tracing left out)."""
    gan = build("egan", 0, args)
    mixture = MIXTURES[args.mixtures[0]]
    warm = 2 * args.steps_per_execution
    train(gan, mixture, 0, 0, warm, args.batch)
    began = time.perf_counter()
    n = 10 * args.steps_per_execution
    train(gan, mixture, 0, warm, warm + n, args.batch)
    return (time.perf_counter() - began) / n


def choose_updates(args, out):
    """(updates per run, why): --updates, or what the time budget allows (kept in
    OUT/calibration.json so that a restart reuses the finished runs)."""
    if args.updates:
        return args.updates, "--updates"
    path = os.path.join(out, "calibration.json")
    key = {k: getattr(args, k) for k in ("minutes_per_run", "checkpoints", "width", "batch",
                                         "fitness_batch", "jit", "steps_per_execution",
                                         "threads")}
    if files.exists(path) and files.read_json(path)["key"] == key:
        found = files.read_json(path)
    else:
        per_generation = seconds_per_generation(args)
        fit = int(args.minutes_per_run * 60 / per_generation)
        updates = max(args.checkpoints,
                      min(AUTHORS_UPDATES, fit) // args.checkpoints * args.checkpoints)
        why = (f"E-GAN's {1000 * per_generation:.1f} ms per generation x {updates} = "
               f"{per_generation * updates / 60:.1f} min <= --minutes_per_run="
               f"{args.minutes_per_run:g}" if fit < AUTHORS_UPDATES else
               f"the authors' {AUTHORS_UPDATES} fit in --minutes_per_run")
        found = dict(key=key, updates=updates, why=why)
        files.write_json(path, found)
    print(f"updates per run: {found['updates']} ({found['why']})", flush=True)
    return found["updates"], found["why"]


def scatter_panel(points, mixture, size=160, extent=2.0):
    """One scatter plot: 3-sd discs of the modes (orange), samples (green), uint8 RGB."""
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    scale = size / (2 * extent)

    def pixel(x, y):
        return (x + extent) * scale, (extent - y) * scale  # y up

    radius = max(2.0, 3 * mixture.std * scale)
    for x, y in mixture.centres:
        cx, cy = pixel(x, y)
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius],
                     outline=(255, 140, 0))
    points = np.asarray(points)
    points = points[np.isfinite(points).all(1) & (np.abs(points) < extent).all(1)]
    for x, y in points:
        draw.point(pixel(x, y), fill=(0, 128, 0))
    draw.rectangle([0, 0, size - 1, size - 1], outline=(160, 160, 160))
    return np.asarray(image)


def picture(rows, mixture, updates_at, size=160):
    """rows: {method: samples [checkpoints, n, 2]} -> one uint8 image, labelled."""
    label_w, label_h, pad = 96, 16, 4
    cols = len(updates_at)
    image = Image.new("RGB", (label_w + cols * (size + pad), label_h + len(rows) * (size + pad)),
                      "white")
    draw = ImageDraw.Draw(image)
    for c, update in enumerate(updates_at):
        draw.text((label_w + c * (size + pad) + 4, 2), f"update {update}", fill="black")
    for r, (method, samples) in enumerate(rows.items()):
        top = label_h + r * (size + pad)
        draw.text((4, top + size // 2), method, fill="black")
        for c, points in enumerate(samples):
            panel = Image.fromarray(scatter_panel(points, mixture, size))
            image.paste(panel, (label_w + c * (size + pad), top))
    return np.asarray(image)


def mean_sd(values):
    values = np.asarray(values, np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def table(runs, args, updates, why):
    """The Markdown table of `runs` ({mixture: {method: {seed: record}}})."""
    lines = [f"{len(args.seeds)} seed(s) {','.join(map(str, args.seeds))}; {updates} D "
             f"updates per run ({why}); {NUM_SAMPLES} samples; a mode is covered by >= "
             f"{MIN_COUNT} samples within 3 sd of its centre; mean +- sd over seeds.", "",
             "| mixture | method | modes covered | high-quality fraction | modes at each "
             "checkpoint (mean) | diversity decided | mutation wins (minimax / heuristic "
             "/ least-squares, all seeds) | train s |", "|---|---|---|---|---|---|---|---|"]
    for mixture_name, methods in runs.items():
        real = mode_stats(real_batch(MIXTURES[mixture_name], 99, 0, NUM_SAMPLES).numpy(),
                          MIXTURES[mixture_name])
        for method, seeds in methods.items():
            records = list(seeds.values())
            modes, quality = (mean_sd([r[k] for r in records]) for k in ("modes",
                                                                         "high_quality"))
            curve = " / ".join(f"{np.mean([r['checkpoints'][k]['modes'] for r in records]):.1f}"
                               for k in range(args.checkpoints))
            diversity = wins = ""
            if METHODS[method] is None:
                share = mean_sd([r["diversity_share"] for r in records])
                diversity = f"{share[0]:.3f} +- {share[1]:.3f}"
                wins = " / ".join(str(sum(r["wins"][m] for r in records))
                                  for m in ("minimax", "heuristic", "least_squares"))
            lines.append(f"| {mixture_name} | {method} | {modes[0]:.1f} +- {modes[1]:.1f} | "
                         f"{quality[0]:.3f} +- {quality[1]:.3f} | {curve} | {diversity} | "
                         f"{wins} | {np.mean([r['seconds'] for r in records]):.0f} |")
        lines.append(f"| {mixture_name} | real data | {real['modes']} | "
                     f"{real['high_quality']:.3f} | | | | |")
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/egan_toys")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated")
    parser.add_argument("--mixtures", default="8,25", help="of " + ",".join(MIXTURES))
    parser.add_argument("--methods", default=",".join(METHODS), help="of " + ",".join(METHODS))
    parser.add_argument("--updates", type=int, default=0,
                        help="D updates per run (0: as many as --minutes_per_run allows E-GAN, "
                             f"at most the authors' {AUTHORS_UPDATES})")
    parser.add_argument("--minutes_per_run", type=float, default=5.0)
    parser.add_argument("--checkpoints", type=int, default=5,
                        help="evenly spaced points of training scored and drawn")
    parser.add_argument("--width", type=int, default=AUTHORS["width"])
    parser.add_argument("--z_dim", type=int, default=AUTHORS["z_dim"])
    parser.add_argument("--batch", type=int, default=AUTHORS["batch"])
    parser.add_argument("--lr", type=float, default=AUTHORS["lr"])
    parser.add_argument("--gamma", type=float, default=AUTHORS["gamma"])
    parser.add_argument("--fitness_batch", type=int, default=AUTHORS["fitness_batch"])
    parser.add_argument("--plot_points", type=int, default=2500, help="samples per panel")
    parser.add_argument("--jit", action=argparse.BooleanOptionalAction, default=True,
                        help="XLA for the train step")
    parser.add_argument("--steps_per_execution", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0,
                        help="TensorFlow's intra-op threads (0: its default)")
    args = parser.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    for flag, known in (("mixtures", MIXTURES), ("methods", METHODS)):
        names = [n.strip() for n in getattr(args, flag).split(",") if n.strip()]
        if not names or set(names) - set(known):
            parser.error(f"--{flag} must be names from {','.join(known)}, got "
                         f"{getattr(args, flag)!r}")
        setattr(args, flag, names)
    if args.updates and args.updates < args.checkpoints:
        parser.error(f"--updates={args.updates} must be >= --checkpoints={args.checkpoints}")
    return args


def main(argv=None):
    """Runs the benchmark; returns the results written to OUT/egan_toys.json."""
    args = parse_args(argv)
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    out = os.path.abspath(args.out)
    os.makedirs(os.path.join(out, "runs"), exist_ok=True)
    updates, why = choose_updates(args, out)
    runs = {m: {method: {} for method in args.methods} for m in args.mixtures}
    for mixture_name in args.mixtures:
        drawn = {}
        for seed in args.seeds:
            for method in args.methods:
                record, samples = run_one(mixture_name, method, seed, updates, args, out)
                runs[mixture_name][method][seed] = record
                if seed == args.seeds[0]:
                    drawn[method] = samples
        updates_at = [updates * k // args.checkpoints for k in range(1, args.checkpoints + 1)]
        image_utils.write_png(os.path.join(out, f"egan_toys_{mixture_name}.png"),
                              picture(drawn, MIXTURES[mixture_name], updates_at))
    results = dict(args=vars(args), updates=updates, updates_why=why, min_count=MIN_COUNT,
                   num_samples=NUM_SAMPLES, runs=runs)
    files.write_json(os.path.join(out, "egan_toys.json"), results)
    text = table(runs, args, updates, why)
    files.write_bytes(os.path.join(out, "egan_toys.md"), text)
    print(text, flush=True)
    return results


if __name__ == "__main__":
    main()
