r"""Every way we know to compute a DCGAN layer's kernel gradient on this CPU, timed.

    TF_NUM_INTEROP_THREADS=1 .venv/bin/python benchmarks/kernel_gradients.py \
        --out=runs/kernel_gradients

The kernel gradient of y = conv2d(x, k, stride 2, "same") with a 4x4 kernel is
dk[kh, kw, c, c'] = sum over n, i, j of xpad[n, 2i + kh, 2j + kw, c] * dy[n, i, j, c'].
For each 4x4/2 layer of the 64x64 nets (batch --batch; G's transposed layers have the
same product with x and dy swapped) it times, in bfloat16 with this process's threads:

  * onednn: TensorFlow's Conv2DBackpropFilter (oneDNN), what Keras' layers run;
  * gather_matmul: one im2col gather and one matmul with transpose_a
    (`fast_layers.kernel_gradient`, what the step runs at 8x8 and below);
  * matmul_alone: that matmul on patches gathered beforehand (the gather's cost is the
    difference), and matmul_pretransposed: the same on patches stored transposed;
  * space_to_depth: the 4x4/2 product as a 2x2 stride-1 one on space-to-depth blocks,
    then oneDNN's Conv2DBackpropFilter;
  * forward_conv: a forward convolution with the batch as channels (x as [C, H, W, N],
    dy as a 2-dilated [h, w, N, C'] filter), oneDNN's fastest kind of product here;
  * batch_chunks: the gather + matmul over 8 slices of the batch, summed (the patches of
    a slice fit the cache).

Each is the best of --repeats windows (the forms take turns), checked against onednn's
result, and set against a 2048^2 matmul's rate timed in the same process
(`step_profile.matmul_peak`).
Writes OUT/kernel_gradients.json and OUT/kernel_gradients.md. Measured results:
docs/benchmarks.md, "Where the time of a step goes (issue 29)".
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

# (layer, input side, input channels, output channels) of the 64x64 nets, ngf = ndf = 64.
LAYERS = (("D block1 / G output", 64, 3, 64), ("D block2 / G block3", 32, 64, 128),
          ("D block3 / G block2", 16, 128, 256), ("D block4 / G block1", 8, 256, 512))
FORMS = ("onednn", "gather_matmul", "matmul_alone", "matmul_pretransposed",
         "space_to_depth", "forward_conv", "batch_chunks")


def forms(x, dy):
    """{form: function of no arguments} computing dk [4, 4, C, C'] for these tensors."""
    import tensorflow as tf
    from dcgan_keras.models import fast_layers
    _, h, w, c = x.shape
    c_out = dy.shape[-1]
    patches = fast_layers._patches(x)
    patches_t = tf.transpose(patches)
    flat_dy = tf.reshape(dy, [-1, c_out])

    def onednn():
        return tf.raw_ops.Conv2DBackpropFilter(
            input=x, filter_sizes=[4, 4, c, c_out], out_backprop=dy, strides=[1, 2, 2, 1],
            padding="SAME")

    def space_to_depth():
        blocks = tf.nn.space_to_depth(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), 2)
        grad = tf.raw_ops.Conv2DBackpropFilter(  # [a, b, (dh, dw, c), c']
            input=blocks, filter_sizes=[2, 2, 4 * c, c_out], out_backprop=dy,
            strides=[1, 1, 1, 1], padding="VALID")
        grad = tf.reshape(grad, [2, 2, 2, 2, c, c_out])  # kh = 2a + dh, kw = 2b + dw
        return tf.reshape(tf.transpose(grad, [0, 2, 1, 3, 4, 5]), [4, 4, c, c_out])

    def forward_conv():
        images = tf.transpose(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), [3, 1, 2, 0])
        kernel = tf.transpose(dy, [1, 2, 0, 3])  # [h/2, w/2, N, C']
        out = tf.nn.conv2d(images, kernel, 1, "VALID", dilations=2)  # [C, 4, 4, C']
        return tf.transpose(out, [1, 2, 0, 3])

    def batch_chunks():
        parts = [fast_layers.kernel_gradient(xs, ds)
                 for xs, ds in zip(tf.split(x, 8), tf.split(dy, 8))]
        return tf.add_n([tf.cast(p, tf.float32) for p in parts])

    return {
        "onednn": onednn,
        "gather_matmul": lambda: fast_layers.kernel_gradient(x, dy),
        "matmul_alone": lambda: tf.reshape(
            tf.matmul(patches, flat_dy, transpose_a=True), [4, 4, c, c_out]),
        "matmul_pretransposed": lambda: tf.reshape(
            tf.matmul(patches_t, flat_dy), [4, 4, c, c_out]),
        "space_to_depth": space_to_depth,
        "forward_conv": forward_conv,
        "batch_chunks": batch_chunks,
    }


def best_seconds(fns, repeats, inner=5):
    """{name: best seconds per call} of compiled functions, over `repeats` rounds of one
    window of `inner` calls each, the functions taking turns within a round (so a slow
    spell of the machine does not fall on one form only)."""
    import tensorflow as tf
    runs = {name: tf.function(fn) for name, fn in fns.items()}
    for run in runs.values():
        run().numpy()
    best = {name: float("inf") for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            for _ in range(inner):
                out = run()
            out.numpy()
            best[name] = min(best[name], (time.perf_counter() - start) / inner)
    return best


def relative_error(a, b):
    import tensorflow as tf
    a, b = tf.cast(a, tf.float32), tf.cast(b, tf.float32)
    return float(tf.reduce_max(tf.abs(a - b)) / tf.reduce_max(tf.abs(b)))


def measure(batch, repeats, layers=LAYERS, names=FORMS):
    """Rows (layer, form, ms, GFLOP/s, error against onednn) for the layers' shapes."""
    import tensorflow as tf
    rows = []
    for layer, side, c, c_out in layers:
        x = tf.cast(tf.random.stateless_normal([batch, side, side, c], seed=[1, 2]),
                    tf.bfloat16)
        dy = tf.cast(tf.random.stateless_normal([batch, side // 2, side // 2, c_out],
                                                seed=[3, 4]), tf.bfloat16)
        flops = 2 * batch * (side // 2) ** 2 * 16 * c * c_out
        every = forms(x, dy)
        fns = {name: fn for name, fn in every.items() if name in names}
        reference = every["onednn"]()
        best = best_seconds(fns, repeats)
        for name in names:
            seconds = best[name]
            rows.append(dict(layer=layer, form=name, ms=1e3 * seconds,
                             gflops=flops / seconds / 1e9,
                             error=relative_error(fns[name](), reference)))
            print(f"{layer}: {name} {rows[-1]['ms']:.2f} ms, {rows[-1]['gflops']:.0f} GFLOP/s",
                  flush=True)
    return rows


def markdown(rows, peak, header):
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    names = list(dict.fromkeys(r["form"] for r in rows))
    cell = {(r["layer"], r["form"]): r for r in rows}
    lines = [header, "", "| form | " + " | ".join(layers) + " |",
             "|---" * (len(layers) + 1) + "|"]
    for name in names:
        values = []
        for layer in layers:
            r = cell[(layer, name)]
            values.append(f"{r['ms']:.1f} ms, {r['gflops'] / peak * 1e9:.2f}")
        lines.append(f"| {name} | " + " | ".join(values) + " |")
    lines += ["", "Each cell: ms per call and the fraction of the matmul peak; every form's "
              "largest relative difference from onednn's result: "
              f"{max(r['error'] for r in rows):.3g} (bfloat16 rounding)."]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default="runs/kernel_gradients")
    args = parser.parse_args()
    import step_profile
    print("measuring the matmul peak ...", flush=True)
    peak = step_profile.matmul_peak("bfloat16")
    rows = measure(args.batch, args.repeats)
    header = (f"Kernel gradients of the 64x64 nets' 4x4/2 layers, batch {args.batch}, "
              f"bfloat16; {step_profile.machine()}; {time.strftime('%Y-%m-%d')}; matmul peak "
              f"{peak / 1e9:.0f} GFLOP/s")
    text = markdown(rows, peak, header)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "kernel_gradients.json"), "w") as f:
        json.dump(dict(rows=rows, peak_flops=peak, batch=args.batch), f, indent=1)
    with open(os.path.join(args.out, "kernel_gradients.md"), "w") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
