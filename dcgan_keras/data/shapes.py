"""`--dataset=shapes`: procedural scenes with exact per-pixel masks, and their segmenter.

A scene is a background of low saturation (a random tint with a linear brightness
gradient) with 1-4 flat-coloured objects drawn over it, later objects on top. The objects'
colours come in one of two ways (`colors`; `--dataset=shapes` and `--dataset=shapes_random`):

- "family" (the default): each kind has its own colour family, far apart in HSV, so the
  colour alone tells the kind (and the colour rule below segments exactly):

    circle    red    hue   0 +- 20 deg, saturation 0.7-1, value 0.6-1
    square    green  hue 120 +- 20 deg, (rotated)
    triangle  blue   hue 240 +- 20 deg, (equilateral, rotated)
    background       saturation <= 0.2, value 0.25-0.9

- "random": every object's hue is uniform on the whole circle, independent of its kind
  (saturation and value as above). Only the shape tells the kind, so a dissected unit
  that matches "square" draws squares, not green; a colour rule cannot segment these
  scenes, a learned segmenter can (binaries/train_segmenter.py). The masks stay exact.

Geometry is in unit coordinates, and a pixel belongs to a shape when its centre does (no
antialiasing), so a scene renders at any image_size and its masks are exact: the label
map says which concept each pixel shows. Scenes are a pure function of (split, index):
seeded, no download.

`segment` is the matching segmenter, a per-pixel colour rule (saturation, then the nearest
hue family). It is exact on the dataset (tests/data/test_shapes.py) and gives a
segmentation of generated images, where no ground truth exists.
"""
import colorsys

import numpy as np
import tensorflow as tf

from dcgan_keras.data.source import Source

KINDS = ("circle", "square", "triangle")
CONCEPTS = ("background",) + KINDS  # label map values 0..3
HUES = (0.0, 120.0, 240.0)  # degrees, one family per kind
HUE_SPREAD = 20.0
OBJECT_SATURATION = (0.7, 1.0)
OBJECT_VALUE = (0.6, 1.0)
BACKGROUND_SATURATION = 0.2
BACKGROUND_VALUE = (0.25, 0.9)
# The segmenter's rule: a pixel is an object when saturated and bright enough. The
# thresholds sit between the families' ranges, so uint8 rounding never crosses them.
SATURATION_THRESHOLD = 0.45
VALUE_THRESHOLD = 0.3
RADIUS = (0.1, 0.22)  # circumradius of an object, in units of the image side
MAX_OBJECTS = 4
SPLIT_SIZES = {"train": 50_000, "test": 10_000}
_SPLIT_SEEDS = {"train": 0, "test": 1}
COLORS = ("family", "random")
DEFAULT_SIZE = 64  # what `Source.load` renders; training renders at its image_size


def _hsv_to_rgb(h, s, v):
    """h in degrees, s and v in [0, 1] -> RGB floats [3] in [0, 1]."""
    return np.array(colorsys.hsv_to_rgb((h % 360.0) / 360.0, s, v))


def check_colors(colors):
    """Refuses an unknown --shapes_colors value."""
    if colors not in COLORS:
        raise ValueError(f"shapes_colors must be one of {', '.join(COLORS)}, got {colors!r}")
    return colors


def scene_params(index, split="train", colors="family"):
    """The scene of (split, index): a dict of background and object parameters.

    The geometry of a scene does not depend on `colors` (the same random draws are made
    either way), so scene i of both datasets has the same shapes in different colours."""
    check_colors(colors)
    rng = np.random.default_rng([_SPLIT_SEEDS[split], int(index)])
    background = {
        "hue": rng.uniform(0, 360), "saturation": rng.uniform(0, BACKGROUND_SATURATION),
        "values": rng.uniform(*BACKGROUND_VALUE, size=2), "angle": rng.uniform(0, 2 * np.pi)}
    objects = []
    for _ in range(rng.integers(1, MAX_OBJECTS + 1)):
        kind = int(rng.integers(len(KINDS)))
        radius, center = rng.uniform(*RADIUS), rng.uniform(0.15, 0.85, size=2)
        angle, offset = rng.uniform(0, 2 * np.pi), rng.uniform(-HUE_SPREAD, HUE_SPREAD)
        saturation, value = rng.uniform(*OBJECT_SATURATION), rng.uniform(*OBJECT_VALUE)
        # "random": a hue of its own stream (seeded by the scene and the object), so the
        # draws above, and hence the geometry, are those of the "family" scene.
        hue = (HUES[kind] + offset if colors == "family" else np.random.default_rng(
            [_SPLIT_SEEDS[split], int(index), len(objects), 1]).uniform(0, 360))
        objects.append({"kind": kind, "radius": radius, "center": center, "angle": angle,
                        "rgb": _hsv_to_rgb(hue, saturation, value)})
    return {"background": background, "objects": objects}


def _inside(kind, radius, center, angle, x, y):
    """Which pixel centres (x, y in unit coordinates) lie inside the shape."""
    dx, dy = x - center[0], y - center[1]
    if KINDS[kind] == "circle":
        return dx * dx + dy * dy <= radius * radius
    # Rotate the pixel into the shape's frame.
    u = np.cos(angle) * dx + np.sin(angle) * dy
    v = -np.sin(angle) * dx + np.cos(angle) * dy
    if KINDS[kind] == "square":
        half = radius / np.sqrt(2.0)
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    # Equilateral triangle: inside the three edges at distance radius/2 from the centre.
    inside = np.ones_like(u, bool)
    for k in range(3):
        a = 2 * np.pi * k / 3
        inside &= np.cos(a) * u + np.sin(a) * v <= radius / 2
    return inside


def render(index, size, split="train", colors="family"):
    """Renders scene `index` of `split` at size x size.

    Args:
        index: the scene's index (any non-negative integer).
        size: image side in pixels.
        split: "train" or "test" (different scenes).
        colors: "family" or "random" (see the module doc).
    Returns:
        (image uint8 [size, size, 3], labels uint8 [size, size]): labels[i, j] is the
        index in CONCEPTS of what pixel (i, j) shows (0 = background).
    """
    params = scene_params(index, split, colors)
    centres = (np.arange(size) + 0.5) / size
    x, y = np.meshgrid(centres, centres)  # x along columns, y along rows
    bg = params["background"]
    ramp = np.cos(bg["angle"]) * (x - 0.5) + np.sin(bg["angle"]) * (y - 0.5) + 0.5
    value = bg["values"][0] + (bg["values"][1] - bg["values"][0]) * np.clip(ramp, 0, 1)
    # HSV -> RGB is linear in V for a fixed hue and saturation.
    rgb = value[..., None] * _hsv_to_rgb(bg["hue"], bg["saturation"], 1.0)
    labels = np.zeros([size, size], np.uint8)
    for obj in params["objects"]:
        inside = _inside(obj["kind"], obj["radius"], obj["center"], obj["angle"], x, y)
        rgb[inside] = obj["rgb"]
        labels[inside] = obj["kind"] + 1
    return np.round(rgb * 255).astype(np.uint8), labels


def segment(images):
    """The colour-rule segmenter: images -> label maps (values index CONCEPTS).

    Exact on the "family" scenes only: on "random" scenes it still separates objects
    from the background, but names the kind by hue, which there says nothing.

    Args:
        images: uint8 [N, H, W, 3] (or [H, W, 3]), or floats in [-1, 1].
    Returns:
        uint8 label maps [N, H, W] (or [H, W]).
    """
    images = np.asarray(images)
    rgb = images / 255.0 if images.dtype == np.uint8 else (images + 1.0) / 2.0
    if rgb.shape[-1] != 3:
        raise ValueError(f"segment needs RGB images [..., 3], got shape {images.shape}")
    high, low = rgb.max(-1), rgb.min(-1)
    chroma = high - low
    saturation = np.where(high > 0, chroma / np.maximum(high, 1e-8), 0.0)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    hue = np.degrees(np.arctan2(np.sqrt(3.0) * (g - b), 2 * r - g - b))  # -180..180
    distance = np.abs((hue[..., None] - np.asarray(HUES) + 180.0) % 360.0 - 180.0)
    kind = np.argmin(distance, axis=-1) + 1
    is_object = (saturation >= SATURATION_THRESHOLD) & (high >= VALUE_THRESHOLD)
    return np.where(is_object, kind, 0).astype(np.uint8)


def pixel_share(labels, concept):
    """Fraction of the pixels of label maps [N, H, W] that show `concept` (a name)."""
    return float(np.mean(np.asarray(labels) == CONCEPTS.index(concept)))


def render_batch(indices, size, split="train", colors="family"):
    """(images uint8 [N, size, size, 3], labels uint8 [N, size, size]) of scenes `indices`."""
    pairs = [render(int(i), size, split, colors) for i in indices]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def source(split="train", num_examples=None, colors="family"):
    """The shapes dataset as a `Source` (records: scene indices).

    `load` renders at DEFAULT_SIZE; `load_at_least(i, side)` renders at exactly `side`,
    which the crop-and-resize preprocessing then passes through untouched, so training at
    any image_size sees exact shapes.
    """
    n = num_examples or SPLIT_SIZES[split]
    check_colors(colors)

    def load_at_least(index, side):
        image = tf.numpy_function(lambda i: render(i, side, split, colors)[0], [index], tf.uint8,
                                  stateful=False)
        return tf.ensure_shape(image, [side, side, 3])

    return Source(
        name="shapes" if colors == "family" else "shapes_random", split=split, num_examples=n,
        records=lambda: tf.data.Dataset.range(n).map(lambda i: (i, tf.constant(-1, tf.int64))),
        load=lambda index: load_at_least(index, DEFAULT_SIZE), load_at_least=load_at_least)
