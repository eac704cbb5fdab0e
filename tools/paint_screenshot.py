"""Screenshots the paint page (analyze paint) mid-edit on a trained model: the README's.

    python tools/paint_screenshot.py --workdir=runs/paint_shapes [--concept=circle] \
        [--seed=N] [--layer=L] [--out=docs/images/paint.png]

Serves the workdir's generator with the dissection `analyze paint` would use (reused from
WORKDIR/dissection, or made now), opens the page in headless Chromium (Debian's
`chromium` and `chromium-driver`, through tests/webdriver.py), picks --concept and
*remove*, and paints one stroke over the whole object (its bounding box, found by the
shapes segmenter) with real pointer events. The screenshot shows the original, the edited
image under the stroke and the concept's share in the stroke before and after; the script
prints those shares. Without --seed it takes the seed of 0..--search-1 whose concept region
is largest and most compact (`compactness`).
"""
import argparse
import os
import sys
import threading

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))
from webdriver import Browser, find_chromium  # noqa: E402

DISPLAY = 384  # the page's view side, CSS pixels (static/index.html)


def zigzag(box, size, brush):
    """Points (CSS pixels from the canvas centre) of a stroke that covers `box` (x0, y0,
    x1, y1 in image pixels, end exclusive) with a brush `brush` CSS pixels wide."""
    scale = DISPLAY / size
    x0, y0, x1, y1 = (v * scale - DISPLAY / 2 for v in box)
    pad = brush / 2 - 1
    rows = np.arange(y0 + pad, y1 - pad + brush / 2, brush / 2)
    points = []
    for i, y in enumerate(rows):
        ends = (x0 + pad, x1 - pad) if i % 2 == 0 else (x1 - pad, x0 + pad)
        points += [(x, min(y, y1 - pad)) for x in np.linspace(*ends, 6)]
    return points


def compactness(pixels):
    """Pixels of a mask times the share of its bounding box they fill (0 when empty): large
    and compact objects score highest."""
    ys, xs = np.nonzero(pixels)
    if not len(xs):
        return 0.0
    return len(xs) ** 2 / ((xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1))


def concept_pixels(painter, seed, concept):
    """The bool [S, S] mask of `concept` in the seed's unedited image."""
    import base64  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415
    image = tf.io.decode_png(base64.b64decode(painter.edit({"seed": seed})["original"]))
    labels = painter.segmenter(image.numpy()[None])[0]
    return labels == painter.segmenter.concepts.index(concept)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--concept", default="circle")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--search", type=int, default=50)
    parser.add_argument("--layer", default=None)
    parser.add_argument("--brush", type=int, default=48, help="CSS pixels")
    parser.add_argument("--out", default=os.path.join(REPO, "docs", "images", "paint.png"))
    args = parser.parse_args()
    chromium, driver = find_chromium()
    if chromium is None:
        sys.exit(f"paint_screenshot: {driver}")
    from dcgan_keras import workdir as workdir_lib  # noqa: PLC0415
    from dcgan_keras.analysis.dissect import segmenters  # noqa: PLC0415
    from dcgan_keras.analysis.dissect.paint import edits, launch, server  # noqa: PLC0415
    from dcgan_keras.exporters import sampling  # noqa: PLC0415
    g = workdir_lib.networks_from_workdir(args.workdir).generator
    seg = segmenters.load("shapes")
    result = launch.dissection_for(g, seg, os.path.join(args.workdir, "dissection"),
                                   sampling.latents(1000, 0, g.z_dim, g.z_distribution).numpy(),
                                   list(g.conv_layer_names), num_examples=6)
    if args.layer:
        result = dict(result, best_layer=args.layer)
    painter = edits.Painter(g, result, seg)
    seed = args.seed if args.seed is not None else max(
        range(args.search), key=lambda s: compactness(concept_pixels(painter, s, args.concept)))
    ys, xs = np.nonzero(concept_pixels(painter, seed, args.concept))
    if not len(xs):
        sys.exit(f"paint_screenshot: seed {seed} has no {args.concept}")
    box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    httpd = server.bind("127.0.0.1", 0, painter)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with Browser(chromium, driver) as b:
            b.get(httpd.url)
            b.wait_for("return document.body.dataset.ready === '1';")
            b.run(f"const s = document.getElementById('seed'); s.value = {seed};"
                  "s.dispatchEvent(new Event('change'));")
            b.wait_for("return document.getElementById('status').textContent.startsWith("
                       f"'seed {seed},');")
            b.run(f"const r = document.getElementById('brush'); r.value = {args.brush};"
                  "r.dispatchEvent(new Event('input'));")
            b.click(f'input[name="concept"][value="{args.concept}"]')
            b.click("#mode-remove")
            b.drag("#paint", zigzag(box, painter.size, args.brush))
            b.wait_for("return document.body.dataset.edits === '1';")
            before, after = b.run(
                "return ['share-before', 'share-after'].map("
                "(id) => Number(document.getElementById(id).dataset.value));")
            png = b.screenshot()
    finally:
        httpd.shutdown()
        httpd.server_close()
    with open(args.out, "wb") as f:
        f.write(png)
    print(f"seed {seed}, layer {painter.default_layer}, remove {args.concept} over pixels "
          f"{tuple(int(v) for v in box)}: share in the stroke {before:.3f} -> {after:.3f}; "
          f"wrote {args.out}")


if __name__ == "__main__":
    main()
