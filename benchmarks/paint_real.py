r"""Editing real shapes scenes through the paint server: upload, invert, remove an object.

    python benchmarks/paint_real.py --workdir=runs/shapes32_noise \
        --segmenter=runs/seg32/segmenter --dissection=runs/dissect_noise32/iqr \
        --num=100 --out=runs/paint_real.json

For each of the first --num test scenes of the workdir's shapes dataset (rendered at G's
size, with their exact masks), a client of the paint server (127.0.0.1, in this process)
POSTs the scene as a PNG to /api/invert, then, for each kind the segmenter sees in the
reconstruction, POSTs a *remove* edit of that kind's units over every layer cell that
holds it (as benchmarks/paint_effect.py does for samples). Reports the inversion's PSNR,
how often each kind of the real scene is in its reconstruction, and for each kind the
share inside the stroke before and after the edit.
"""
import base64
import importlib.util
import io
import os
import platform
import sys
import time

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "runs/shapes32_noise", "A DCGAN trained on shapes scenes.")
flags.DEFINE_string("segmenter", "runs/seg32/segmenter", "Segmenter of the dissection.")
flags.DEFINE_string("dissection", "runs/dissect_noise32/iqr", "An analyze dissect out_dir.")
flags.DEFINE_string("layer", None, "Layer edited (default: the dissection's best).")
flags.DEFINE_integer("num", 100, "Test scenes.")
flags.DEFINE_integer("num_units", 20, "Units per concept.")
flags.DEFINE_string("out", "runs/paint_real.json", "The JSON summary.")

_spec = importlib.util.spec_from_file_location(
    "paint_effect", os.path.join(os.path.dirname(os.path.abspath(__file__)), "paint_effect.py"))
paint_effect = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(paint_effect)


def png_text(image):
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def main(_):
    from dcgan_keras import workdir as workdir_lib
    from dcgan_keras.analysis.dissect import segmenters
    from dcgan_keras.analysis.dissect.paint import edits, launch
    from dcgan_keras.data import datasets, shapes
    from dcgan_keras.utils import files
    nets = workdir_lib.networks_from_workdir(FLAGS.workdir)
    g = nets.generator
    seg = segmenters.load(FLAGS.segmenter)
    result = launch.load_dissection(FLAGS.dissection, g, seg)
    if FLAGS.layer:
        result = dict(result, best_layer=FLAGS.layer)
    painter = edits.Painter(g, result, seg, FLAGS.num_units, "iou", nets.discriminator,
                            nets.preprocess)
    httpd = paint_effect._serve(painter)
    url = httpd.url
    layer = painter.default_layer
    grid = painter.info()["layers"][layer]["grid"]
    colors = datasets.SHAPES[nets.dataset]
    kinds = [c for c in seg.concepts if c != "background"]
    psnrs, seconds, found = [], [], {k: [0, 0] for k in kinds}
    before, after = {k: [] for k in kinds}, {k: [] for k in kinds}
    start = time.time()
    for i in range(FLAGS.num):
        image, truth = shapes.render(i, g.image_size, "test", colors)
        t = time.perf_counter()
        inverted = paint_effect.post(url + "api/invert", {"image": png_text(image)})
        seconds.append(time.perf_counter() - t)
        psnrs.append(inverted["psnr"])
        z = inverted["z"]
        labels = seg(paint_effect._decode(inverted["image"])[None])[0]
        for k in kinds:
            index = shapes.CONCEPTS.index(k)
            if (truth == index).any():
                found[k][1] += 1
                found[k][0] += int((labels == seg.concepts.index(k)).sum() > 0)
            pixels = labels == seg.concepts.index(k)
            if not pixels.any():
                continue
            mask = paint_effect.cells_touched(pixels, grid)
            answer = paint_effect.post(url + "api/edit", {"z": z, "layer": layer, "edits": [{
                "concept": k, "mode": "remove", "region": {"mask": edits.mask_rows(mask)}}]})
            before[k].append(answer["shares"][0]["before"])
            after[k].append(answer["shares"][0]["after"])
        if (i + 1) % 20 == 0:
            print(f"{i + 1}/{FLAGS.num} scenes, {time.time() - start:.0f} s", file=sys.stderr,
                  flush=True)
    httpd.shutdown()
    summary = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
               "workdir": FLAGS.workdir, "layer": layer, "num": FLAGS.num,
               "psnr": float(np.mean(psnrs)), "psnr_sd": float(np.std(psnrs)),
               "seconds_per_inversion": float(np.median(seconds)),
               "kind_kept": {k: (found[k][0] / found[k][1] if found[k][1] else None)
                             for k in kinds},
               "remove": {k: paint_effect.summarise(before[k], after[k], "remove")
                          for k in kinds if before[k]}}
    files.write_json(FLAGS.out, summary)
    print(f"PSNR {summary['psnr']:.1f} +- {summary['psnr_sd']:.1f} dB, "
          f"{summary['seconds_per_inversion']:.1f} s per inversion; kinds of the scene in "
          f"the reconstruction: {summary['kind_kept']}")
    for k, s in summary["remove"].items():
        print(f"remove {k} (n={s['n']}): share in the stroke {s['before']:.3f} -> "
              f"{s['after']:.3f}, moved down {100 * s['moved_right_way']:.0f}%")
    print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
    from dcgan_keras.binaries import common  # noqa: F401  (quiet TensorFlow)
    app.run(main)
