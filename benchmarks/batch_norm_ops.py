r"""A DCGAN block's training batch norm + activation: TensorFlow's ops against the native op.

    TF_NUM_INTEROP_THREADS=1 .venv/bin/python benchmarks/batch_norm_ops.py \
        --out=runs/batch_norm_ops

For each batch norm of the 64x64 nets (ngf = ndf = 64, batch --batch, bfloat16: D's
LeakyReLU(0.2) blocks, G's ReLU blocks) it times, with this process's threads:

  * tensorflow: what the layers ran before the native op, FusedBatchNormV3 (oneDNN) and
    the activation (LeakyReLU with its gradient from its output, `fast_layers.leaky_relu`;
    ReLU, which Grappler fuses into the batch norm forward);
  * native: `native_ops.batch_norm` (the statistics) and `batch_norm_apply` (the
    normalisation and the activation), as `fast_layers` runs them in training.

Each form's forward alone and forward + gradient (x, gamma and beta) are the best of
--repeats windows of 10 calls, the forms taking turns; the table gives ms per call and the
bytes they must move at the least (forward: x read twice, y written; gradient: x and dy
read twice, dx written) over that time. Writes OUT/batch_norm_ops.json and
OUT/batch_norm_ops.md. Measured results: docs/benchmarks.md, "Where the time of a step
goes (issue 29)".
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

# (layer, side, channels, activation slope) of the 64x64 nets' batch norms, ngf = ndf = 64.
LAYERS = (("D block2", 16, 128, 0.2), ("D block3", 8, 256, 0.2), ("D block4", 4, 512, 0.2),
          ("G project", 4, 512, 0.0), ("G block1", 8, 256, 0.0), ("G block2", 16, 128, 0.0),
          ("G block3", 32, 64, 0.0))
FORMS = ("tensorflow", "native")
EPSILON = 1e-5


def _form(name, slope):
    import tensorflow as tf

    from dcgan_keras.models import fast_layers, native_ops

    def tensorflow(x, gamma, beta):
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, epsilon=EPSILON,
                                                   is_training=True)
        return fast_layers.leaky_relu(y, slope) if slope else tf.nn.relu(y)

    def native(x, gamma, beta):
        _, mean, variance = native_ops.batch_norm(x, gamma, beta, EPSILON)
        return native_ops.batch_norm_apply(x, mean, variance, gamma, beta, EPSILON, slope)

    fn = {"tensorflow": tensorflow, "native": native}[name]

    @tf.function
    def forward(x, gamma, beta):
        return fn(x, gamma, beta)

    @tf.function
    def both(x, gamma, beta, dy):
        with tf.GradientTape() as tape:
            tape.watch([x, gamma, beta])
            y = fn(x, gamma, beta)
        return [y] + tape.gradient(y, [x, gamma, beta], output_gradients=dy)

    return forward, both


def _timed_window(fn, args, calls=10):
    """A function that times one window of `calls` calls, and the list it appends to."""
    import tensorflow as tf
    best = []

    def window():
        start = time.perf_counter()
        for _ in range(calls):
            out = fn(*args)
        tf.nest.map_structure(lambda t: t.numpy(), out)
        best.append((time.perf_counter() - start) / calls * 1e3)

    return window, best


def measure(batch, repeats, layers=LAYERS):
    """One row per layer and form: ms forward, ms forward + gradient, the bytes they move at
    the least, and the largest difference from the tensorflow form (relative to its
    largest value) of y, dx, dgamma and dbeta."""
    import numpy as np
    import tensorflow as tf

    from dcgan_keras.models import native_ops
    if native_ops.library() is None:
        raise SystemExit(f"the native op is off here: {native_ops.error()}")
    rows = []
    rng = np.random.default_rng(0)
    for layer, side, channels, slope in layers:
        shape = (batch, side, side, channels)
        x = tf.constant(rng.normal(0.3, 2.0, shape), tf.bfloat16)
        dy = tf.constant(rng.normal(0.0, 1.0, shape), tf.bfloat16)
        gamma = tf.constant(rng.uniform(0.5, 1.5, channels), tf.float32)
        beta = tf.constant(rng.normal(0.0, 0.5, channels), tf.float32)
        fns = {name: _form(name, slope) for name in FORMS}
        results = {name: fns[name][1](x, gamma, beta, dy) for name in FORMS}
        windows = {}
        for name, (forward, both) in fns.items():
            windows[(name, "forward")] = _timed_window(forward, (x, gamma, beta))
            windows[(name, "both")] = _timed_window(both, (x, gamma, beta, dy))
        for _ in range(repeats):
            for window, _ in windows.values():
                window()
        size = batch * side * side * channels * 2  # bytes of one bfloat16 tensor
        for name in FORMS:
            errors = {}
            for key, a, b in zip(["y", "dx", "dgamma", "dbeta"], results[name],
                                 results["tensorflow"]):
                a, b = (np.asarray(tf.cast(t, tf.float32)) for t in (a, b))
                errors[key] = float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))
            rows.append(dict(layer=layer, shape=list(shape), slope=slope, form=name,
                             forward_ms=min(windows[(name, "forward")][1]),
                             both_ms=min(windows[(name, "both")][1]),
                             forward_bytes=3 * size, both_bytes=8 * size, errors=errors))
    return rows


def markdown(rows, header):
    lines = [header, "",
             "| layer | shape | form | forward ms (GB/s) | forward + gradient ms (GB/s) | "
             "largest difference (y, dx, dgamma, dbeta) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        e = r["errors"]
        lines.append(
            f"| {r['layer']} | {'x'.join(map(str, r['shape']))} | {r['form']} | "
            f"{r['forward_ms']:.2f} ({r['forward_bytes'] / r['forward_ms'] / 1e6:.0f}) | "
            f"{r['both_ms']:.2f} ({r['both_bytes'] / r['both_ms'] / 1e6:.0f}) | "
            f"{e['y']:.4f}, {e['dx']:.4f}, {e['dgamma']:.4f}, {e['dbeta']:.4f} |")
    total = {f: sum(r["both_ms"] for r in rows if r["form"] == f) for f in FORMS}
    lines += ["", f"All layers, forward + gradient: tensorflow {total['tensorflow']:.2f} ms, "
              f"native {total['native']:.2f} ms."]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", default="runs/batch_norm_ops")
    args = parser.parse_args()
    import step_profile
    rows = measure(args.batch, args.repeats)
    machine = step_profile.machine()
    header = (f"batch {args.batch}, bfloat16; {machine}; {time.strftime('%Y-%m-%d')}; best of "
              f"{args.repeats} windows of 10 calls")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "batch_norm_ops.json"), "w") as f:
        json.dump(dict(rows=rows, batch=args.batch, machine=machine), f, indent=1)
    text = markdown(rows, header)
    with open(os.path.join(args.out, "batch_norm_ops.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
