r"""Where an E-GAN generation's time goes, against a DCGAN step, and the FLOPs that bound it.

    .venv/bin/python benchmarks/egan_cost.py --out=runs/egan_cost

The issue's setting: Fashion-MNIST-shaped 32x32x1 images, G and D of --base_width, float32,
no XLA, 3 mutations, n_D = 2 D steps of --d_batch real images each (a generation's batch is
2 x d_batch), the default fitness batch; against a DCGAN step of one D update on d_batch
real + d_batch fake images and one G update. Each phase of the generation is its own
compiled function, timed alone (median of --repeats after a warm-up):
  * d_steps: the n_D D updates (`DCGAN.d_updates`);
  * real_grad: D's gradient of the real half of L_D (once per generation, for F_d);
  * children: the children's updates (state copy, one G update each);
  * fitness: each child's F_q and F_d on the fitness batch (G forward, D forward and
    D's weight gradient), the generation's variation minus the children's updates;
  * rest: selection and the state copies of the winner, the whole generation minus the
    phases above.
The FLOP model counts multiply-adds from the nets' graphs (tf.profiler, forward per image)
and takes a backward pass as 1x forward for the input gradient and 1x for the weight
gradient. It bounds the ratio from below whatever the implementation: the table gives
it beside the measured ratio, and the same again with --fitness_batch_alt (which changes
E-GAN's results: F is estimated on fewer samples) to show what a smaller fitness batch buys.

Writes OUT/egan_cost.json and OUT/egan_cost.md.
"""
import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from dcgan_keras.evolution import egan as egan_lib  # noqa: E402
from dcgan_keras.models import dcgan as dcgan_lib  # noqa: E402


def forward_flops(fn, spec):
    """FLOPs of one call of `fn` on a tensor of `spec` (tf.profiler's float_operation)."""
    graph = tf.function(fn).get_concrete_function(spec).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops


def timed(fn, args, repeats):
    """Median seconds of `fn(*args)` over `repeats` calls, after two warm-up calls."""
    for _ in range(2):
        tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(*args)
        tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, out)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def flop_model(g, d, b, fitness, n_d=2, children=3):
    """Forward-pass units (G or D, per image) of a DCGAN step and of each generation phase.

    fwd = 1, input gradient = 1, weight gradient = 1, in units of that net's per-image
    forward FLOPs: returns {phase: FLOPs}."""
    dcgan = (b * g + 2 * b * d * 3  # G forward; D forward + both gradients, real and fake
             + b * d * 2 + b * g * 2)  # G step: D forward + input gradient, G backward
    return {
        "dcgan_step": dcgan,
        "d_steps": n_d * (b * g + 2 * b * d * 3),
        "real_grad": n_d * b * d * 3,
        "children": children * (b * g + b * d * 2 + b * g * 2),
        "fitness": children * (fitness * g + fitness * d * 3),
    }


def measure(args, fitness_batch):
    b = args.d_batch
    nets = dict(image_size=32, channels=1, z_dim=100, base_width=args.base_width)
    real = tf.random.stateless_uniform([2 * b, 32, 32, 1], [0, 1], minval=-1.0, maxval=1.0)
    dcgan = dcgan_lib.build_dcgan(**nets)
    dcgan.compile(jit_compile=False)
    dcgan_step = tf.function(dcgan.train_step)
    egan = egan_lib.build_egan(**nets, d_steps=2, fitness_batch=fitness_batch)
    egan.compile(jit_compile=False)
    generation = tf.function(egan.train_step)
    d_steps = tf.function(lambda x: egan.d_updates(tf.split(x, 2), b, 1, egan.parents))

    def real_grad(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.softplus(-egan.discriminator(x, training=True)))
        return tape.gradient(loss, egan.discriminator.trainable_variables)

    variation = tf.function(lambda x: egan._variation_and_evaluation(x, b, 1)[:3])
    real_fitness = egan._fitness
    egan._fitness = lambda *a: (tf.constant(0.0), tf.constant(0.0))  # the updates alone
    children = tf.function(lambda x: egan._variation_and_evaluation(x, b, 1)[:3])
    times = {"children_and_real_grad": timed(children, [real], args.repeats)}
    egan._fitness = real_fitness
    times.update(dcgan_step=timed(dcgan_step, [real[:b]], args.repeats),
                 generation=timed(generation, [real], args.repeats),
                 d_steps=timed(d_steps, [real], args.repeats),
                 real_grad=timed(tf.function(real_grad), [real], args.repeats),
                 variation=timed(variation, [real], args.repeats))
    phases = {"d_steps": times["d_steps"], "real_grad": times["real_grad"],
              "children": times["children_and_real_grad"] - times["real_grad"],
              "fitness": times["variation"] - times["children_and_real_grad"]}
    phases["rest"] = times["generation"] - times["d_steps"] - times["variation"]
    g = forward_flops(lambda z: egan.generator(z, training=True), tf.TensorSpec([1, 100]))
    d = forward_flops(lambda x: egan.discriminator(x, training=True),
                      tf.TensorSpec([1, 32, 32, 1]))
    flops = flop_model(g, d, b, fitness_batch)
    return dict(fitness_batch=fitness_batch, seconds=times, phases=phases, flops=flops,
                g_flops_per_image=g, d_flops_per_image=d,
                measured_ratio=times["generation"] / times["dcgan_step"],
                flop_ratio=sum(v for k, v in flops.items() if k != "dcgan_step")
                / flops["dcgan_step"])


def table(result):
    dc = result["seconds"]["dcgan_step"]
    lines = [f"fitness batch {result['fitness_batch']}: one generation "
             f"{1000 * result['seconds']['generation']:.0f} ms, one DCGAN step "
             f"{1000 * dc:.0f} ms: {result['measured_ratio']:.2f}x measured, "
             f"{result['flop_ratio']:.2f}x in FLOPs", "",
             "| phase | ms | x DCGAN step | GFLOP | x DCGAN step's FLOPs |",
             "|---|---|---|---|---|"]
    fl = result["flops"]
    for phase, seconds in result["phases"].items():
        f = fl.get(phase)
        lines.append(f"| {phase} | {1000 * seconds:.1f} | {seconds / dc:.2f} | "
                     + (f"{f / 1e9:.3f} | {f / fl['dcgan_step']:.2f} |" if f else "| |"))
    lines.append(f"| DCGAN step | {1000 * dc:.1f} | 1.00 | {fl['dcgan_step'] / 1e9:.3f} | "
                 "1.00 |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/egan_cost")
    parser.add_argument("--d_batch", type=int, default=64,
                        help="real images per D step (and the DCGAN's batch)")
    parser.add_argument("--base_width", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--fitness_batch_alt", type=int, default=64)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    results = [measure(args, egan_lib.FITNESS_BATCH)]
    if args.fitness_batch_alt:
        results.append(measure(args, args.fitness_batch_alt))
    text = "\n\n".join(table(r) for r in results) + "\n"
    with open(os.path.join(args.out, "egan_cost.json"), "w") as f:
        json.dump(dict(args=vars(args), results=results), f, indent=2)
    with open(os.path.join(args.out, "egan_cost.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
