r"""What a paint stroke does on a trained shapes model, through the paint server's HTTP API.

    flock /tmp/dcgan_cpu.lock python benchmarks/paint_effect.py --workdir=runs/paint_shapes \
        [--seeds=100] [--layers=block1_relu,block2_relu] [--out=runs/paint_shapes/effect.json]

The workdir is a trained shapes DCGAN (docs/benchmarks.md, "Paint with units"); its
dissection is the one `analyze paint` uses (WORKDIR/dissection, made now with the paint
verb's defaults if missing or of another model). Two servers run in this process on
127.0.0.1: one with each concept's top units (what the page offers), one whose "concept"
is as many random units of the layer (other than the top ones), drawn anew for every
seed. For each seed, layer and object concept, a client POSTs /api/edit:

- *remove* over the object: the stroke is every layer cell that holds a pixel of the
  concept in the seed's image (the segmenter's), so it covers all of the object;
- *add* in an empty region: a square of about --add_side pixels on the cell grid where the
  segmenter sees only background (a random such place per seed; none: the seed is skipped).

The server's answer gives the concept's share inside the stroke before and after; the
edited image's segmentation gives the background's share there after. Prints one line per
case and writes the JSON summary (means, 95% normal intervals, how often the share moved
the intended way).
"""
import json
import os
import platform
import threading
import time
import urllib.request

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS


def define_flags():
    """The script's flags (defined when run, so that tests can import its helpers)."""
    flags.DEFINE_string("workdir", "runs/paint_shapes", "A trained shapes workdir.")
    flags.DEFINE_list("layers", None, "Layers edited (default: every dissected layer).")
    flags.DEFINE_integer("seeds", 100, "Seeds 0..N-1 (the sample binary's z of each).")
    flags.DEFINE_integer("num_units", 20, "Units per concept (the paint verb's default).")
    flags.DEFINE_integer("add_side", 12, "Side of the add stroke in image pixels (rounded up "
                         "to whole layer cells).")
    flags.DEFINE_string("out", None, "The JSON summary (default: WORKDIR/paint_effect.json).")


OBJECTS = ("circle", "square", "triangle")


def post(url, body):
    """The JSON answer of POST `url` (raises on an HTTP error)."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def cells_touched(pixels, grid):
    """The pixel mask of the grid cells that hold at least one True pixel of `pixels`."""
    size = pixels.shape[0]
    side = size // grid
    cells = pixels.reshape(grid, side, grid, side).any(axis=(1, 3))
    return np.kron(cells, np.ones([side, side], bool)).astype(bool)


def empty_square(labels, grid, side_px, rng):
    """A random cell-aligned square of >= side_px pixels where `labels` is all 0 (the
    background), as [x0, y0, x1, y1], or None when there is none."""
    size = labels.shape[0]
    cell = size // grid
    n = -(-side_px // cell)  # cells per side
    places = [(x, y) for y in range(grid - n + 1) for x in range(grid - n + 1)
              if not labels[y * cell:(y + n) * cell, x * cell:(x + n) * cell].any()]
    if not places:
        return None
    x, y = places[rng.integers(len(places))]
    return [x * cell, y * cell, (x + n) * cell, (y + n) * cell]


def summarise(before, after, mode):
    """Mean shares, the mean change with its 95% normal interval, and how often the share
    moved the intended way (down for remove, up for add)."""
    from dcgan_keras.analysis.dissect.intervention import Z_95  # noqa: PLC0415
    before, after = np.asarray(before), np.asarray(after)
    change = after - before
    ci = Z_95 * change.std(ddof=1) / np.sqrt(len(change)) if len(change) > 1 else 0.0
    moved = (change < 0) if mode == "remove" else (change > 0)
    return {"n": len(change), "before": float(before.mean()), "after": float(after.mean()),
            "change": float(change.mean()), "ci95": float(ci),
            "moved_right_way": float(moved.mean()) if len(change) else 0.0}


def random_concepts(dissection, layer, rng, k):
    """The layer's concepts for the page, each with k random units instead of its top ones
    (the same values rule: each unit's mean activation where the concept is)."""
    from dcgan_keras.analysis.dissect.paint import edits  # noqa: PLC0415
    means = dissection["layers"][layer]["conditional_mean"]
    concepts = []
    for c in edits.layer_concepts(dissection["layers"][layer], k):
        others = sorted(set(range(len(means[c["name"]]))) - set(c["units"]))
        units = [int(u) for u in rng.choice(others, min(k, len(others)), replace=False)]
        concepts.append({"name": c["name"], "units": units, "iou": [0.0] * len(units),
                         "values": [means[c["name"]][u] for u in units]})
    return concepts


def _decode(text):
    import base64  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415
    return tf.io.decode_png(base64.b64decode(text)).numpy()


def _serve(painter):
    from dcgan_keras.analysis.dissect.paint import server  # noqa: PLC0415
    httpd = server.bind("127.0.0.1", 0, painter)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def main(_):
    from dcgan_keras import workdir as workdir_lib
    from dcgan_keras.analysis.dissect import segmenters
    from dcgan_keras.analysis.dissect.paint import edits, launch
    from dcgan_keras.exporters import sampling
    g = workdir_lib.networks_from_workdir(FLAGS.workdir).generator
    seg = segmenters.load("shapes")
    result = launch.dissection_for(g, seg, os.path.join(FLAGS.workdir, "dissection"),
                                   sampling.latents(1000, 0, g.z_dim, g.z_distribution).numpy(),
                                   list(g.conv_layer_names), num_units=FLAGS.num_units,
                                   num_examples=6)  # the paint verb's dissection
    layers = FLAGS.layers or list(result["layers"])
    top = edits.Painter(g, result, seg, FLAGS.num_units)
    rand = edits.Painter(g, result, seg, FLAGS.num_units)
    servers = {"top": _serve(top), "random": _serve(rand)}
    urls = {kind: httpd.url + "api/edit" for kind, httpd in servers.items()}
    background = seg.concepts.index("background")
    size, cases, start = g.image_size, {}, time.time()
    for layer in layers:
        grid = top.info()["layers"][layer]["grid"]
        for seed in range(FLAGS.seeds):
            rng = np.random.default_rng(seed)
            rand.layers[layer] = random_concepts(result, layer, rng, FLAGS.num_units)
            labels = seg(_decode(post(urls["top"], {"seed": seed, "layer": layer,
                                                    "edits": []})["original"])[None])[0]
            for concept in OBJECTS:
                pixels = labels == seg.concepts.index(concept)
                regions = {"remove": cells_touched(pixels, grid) if pixels.any() else None,
                           "add": empty_square(labels, grid, FLAGS.add_side, rng)}
                for mode, region in regions.items():
                    if region is None:
                        continue
                    mask = region if mode == "remove" else edits.parse_region(
                        {"box": region}, size)
                    body = {"seed": seed, "layer": layer, "edits": [{
                        "concept": concept, "mode": mode,
                        "region": {"mask": edits.mask_rows(mask)}}]}
                    for kind, url in urls.items():
                        answer = post(url, body)
                        share = answer["shares"][0]
                        after = seg(_decode(answer["image"])[None])[0]
                        case = cases.setdefault((layer, concept, mode, kind),
                                                {"before": [], "after": [], "background": []})
                        case["before"].append(share["before"])
                        case["after"].append(share["after"])
                        case["background"].append(float(np.mean(after[mask] == background)))
            if (seed + 1) % 25 == 0:
                print(f"{layer}: {seed + 1}/{FLAGS.seeds} seeds, {time.time() - start:.0f} s",
                      flush=True)
    summary = {}
    for (layer, concept, mode, kind), case in cases.items():
        s = summarise(case["before"], case["after"], mode)
        s["background_after"] = float(np.mean(case["background"]))
        summary.setdefault(layer, {}).setdefault(concept, {}).setdefault(mode, {})[kind] = s
        print(f"{layer} {concept} {mode} ({kind} units, n={s['n']}): share "
              f"{s['before']:.3f} -> {s['after']:.3f}, change {s['change']:+.3f} +- "
              f"{s['ci95']:.3f}, moved the right way {100 * s['moved_right_way']:.0f}%, "
              f"background after {s['background_after']:.3f}", flush=True)
    for httpd in servers.values():
        httpd.shutdown()
    out = FLAGS.out or os.path.join(FLAGS.workdir, "paint_effect.json")
    from dcgan_keras.utils import files  # noqa: PLC0415
    files.write_json(out, {"machine": platform.processor() or platform.machine(),
                           "cpus": os.cpu_count(), "workdir": FLAGS.workdir,
                           "seeds": FLAGS.seeds, "num_units": FLAGS.num_units,
                           "add_side": FLAGS.add_side, "seconds": round(time.time() - start),
                           "layers": summary})
    print(f"wrote {out}")


if __name__ == "__main__":
    from dcgan_keras.binaries import common  # noqa: F401  (quiet TensorFlow)
    define_flags()
    app.run(main)
