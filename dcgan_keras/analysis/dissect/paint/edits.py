"""Edits of a generated image through dissected units, as JSON records that replay exactly.

A record (what the page downloads, and what the server's /api/edit takes) is

    {"seed": 3, "layer": "block1_relu",
     "edits": [{"concept": "circle", "mode": "remove", "units": [4, 17, ...],
                "values": [...], "region": {"mask": ["0011...", ...]}}, ...]}

z is the sample binary's z of the seed (`sampling.latents(1, seed, z_dim, prior)`), or,
for a real image the page inverted (`Painter.invert`), the record holds that z itself:
{"z": [z_dim numbers], "layer": ..., "edits": [...]} in place of the seed. Each edit, in
order, sets its units inside its region at the layer's resolution: to 0 for "remove", to
`values` (each unit's mean activation where the concept is, from the dissection: the
paper's insertion) for "add" (Bau et al. 2018, arXiv:1811.10597, section 3.2; GANPaint).
The units of a concept are its IoU-ranked set or its ACE-optimised set (`analyze paint
--unit_set=iou|ace`). The region is a mask of
image pixels (`mask`: one string of '0'/'1' per image row) or a box (`box`: x0, y0, x1,
y1); a layer cell is in it when at least half of the cell's pixels are (the rule of
`intervention.region_cells`).

`replay(generator, record)` needs nothing but the generator and the record.
"""
import base64
import binascii
import io
import threading
import time

import numpy as np
import PIL.Image
import tensorflow as tf

from dcgan_keras.analysis import nethook
from dcgan_keras.analysis.dissect import intervention
from dcgan_keras.exporters import sampling
from dcgan_keras.models import latent
from dcgan_keras.utils.images import to_uint8

MODES = ("add", "remove")
MAX_EDITS = 100
MAX_SEED = 2**31 - 1
MAX_UPLOAD_PIXELS = 4096 * 4096  # decoded pixels of an uploaded image
INVERT_STARTS, INVERT_STEPS = 4, 200  # the page's inversion (analysis/invert.py)


class PaintError(ValueError):
    """A record or request that cannot be applied; the message says why."""


def _int(value, name, low, high):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PaintError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return value


def parse_region(region, size):
    """The region of an edit as a bool [size, size] mask of image pixels (see module doc)."""
    if not isinstance(region, dict) or len(region) != 1 or not {"mask", "box"} & set(region):
        raise PaintError('region must be {"mask": [rows of 0/1]} or {"box": [x0, y0, x1, y1]}'
                         f", got {str(region)[:80]}")
    if "box" in region:
        box = region["box"]
        if (not isinstance(box, list) or len(box) != 4
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in box)
                or not (0 <= box[0] < box[2] <= size and 0 <= box[1] < box[3] <= size)):
            raise PaintError(f"region box must be [x0, y0, x1, y1] with 0 <= x0 < x1 <= {size} "
                             f"and 0 <= y0 < y1 <= {size} (image pixels), got {box!r}")
        return intervention.box_mask(box, size)
    rows = region["mask"]
    if (not isinstance(rows, list) or len(rows) != size
            or not all(isinstance(r, str) and len(r) == size and set(r) <= {"0", "1"}
                       for r in rows)):
        raise PaintError(f"region mask must be {size} strings of {size} '0'/'1' characters "
                         "(one per image row)")
    mask = np.array([[c == "1" for c in row] for row in rows], bool)
    if not mask.any():
        raise PaintError("region mask is empty: paint over the image first")
    return mask


def mask_rows(mask):
    """A bool [S, S] mask as the record's strings of '0'/'1'."""
    return ["".join("1" if v else "0" for v in row) for row in np.asarray(mask, bool)]


def region_cells(mask, grid):
    """[grid, grid] float32: 1 on the layer cells at least half covered by `mask`
    (`intervention.region_cells`, raising PaintError for the page)."""
    try:
        return intervention.region_cells(mask, grid)
    except ValueError as e:
        raise PaintError(str(e)) from None


def channel_edit(edit, cells):
    """The nethook.ChannelEdit of one checked edit inside `cells`."""
    value = edit["values"] if edit["mode"] == "add" else 0.0
    return nethook.ChannelEdit(edit["units"], value, where=cells)


def check_record(record, split, image_size):
    """Checks a complete record (units and values given) against the split generator.

    Returns:
        (seed or z [z_dim] (a real image's), [(edit, pixel mask [S, S], cells [h, w])]).
    """
    if not isinstance(record, dict):
        raise PaintError(f"the record must be a JSON object, got {type(record).__name__}")
    if record.get("z") is not None:
        seed = check_z(record["z"], split.head.input.shape[-1])
    else:
        seed = _int(record.get("seed"), "seed", 0, MAX_SEED)
    edits = record.get("edits", [])
    if not isinstance(edits, list) or len(edits) > MAX_EDITS:
        raise PaintError(f"edits must be a list of at most {MAX_EDITS} edits")
    grid, _, channels = split.activation_shape
    checked = []
    for i, edit in enumerate(edits):
        if not isinstance(edit, dict) or edit.get("mode") not in MODES:
            raise PaintError(f"edit {i}: mode must be one of {', '.join(MODES)}")
        units = edit.get("units")
        if not isinstance(units, list) or not units:
            raise PaintError(f"edit {i}: units must be a non-empty list")
        for u in units:
            _int(u, f"edit {i}: unit of {split.layer}", 0, channels - 1)
        if units != sorted(set(units)):
            raise PaintError(f"edit {i}: units must be increasing, got {units}")
        if edit["mode"] == "add":
            values = edit.get("values")
            if (not isinstance(values, list) or len(values) != len(units)
                    or not all(isinstance(v, (int, float)) and np.isfinite(v) for v in values)):
                raise PaintError(f"edit {i}: an add edit needs one finite value per unit")
        mask = parse_region(edit.get("region"), image_size)
        checked.append((edit, mask, region_cells(mask, grid)))
    return seed, checked


def render(split, z, checked):
    """uint8 images [1 + len(checked), S, S, C]: the original, then after each edit."""
    states = [split.activations(z)]  # [1, h, w, c]
    for edit, _, cells in checked:
        states.append(np.asarray(channel_edit(edit, cells)(states[-1])))
    return to_uint8(split.images_from(np.concatenate(states))).numpy()


def check_z(z, z_dim):
    """A record's z: a list of z_dim finite numbers -> float32 [z_dim]."""
    if (not isinstance(z, list) or len(z) != z_dim
            or not all(isinstance(v, (int, float)) and np.isfinite(v) for v in z)):
        raise PaintError(f"z must be a list of {z_dim} finite numbers")
    return np.asarray(z, np.float32)


def seed_latent(seed, generator):
    """z [1, z_dim] of `seed`: the sample binary's (exporters/sampling.py), from the
    generator's prior; a z given (an array, a real image's) is that z."""
    if isinstance(seed, np.ndarray):
        return seed.reshape(1, -1)
    return sampling.latents(1, seed, generator.input.shape[-1], latent.of(generator)).numpy()


def replay(generator, record):
    """The image (uint8 [S, S, C]) that a downloaded record of edits describes."""
    split = nethook.SplitGenerator(generator, record.get("layer", ""))
    seed, checked = check_record(record, split, generator.output.shape[1])
    return render(split, seed_latent(seed, generator), checked)[-1]


def png_base64(image):
    """uint8 [S, S, C] -> the base64 text of its PNG file."""
    return base64.b64encode(tf.io.encode_png(image).numpy()).decode("ascii")


UNIT_SETS = ("iou", "ace")


def layer_concepts(layer_result, num_units, units="iou"):
    """A dissect.json layer entry -> [{"name", "units", "iou", "values"}]: each concept's
    IoU-ranked units (best first) or its ACE-optimised ones (largest alpha first), with
    their IoU and their concept-conditional means (what "add" writes)."""
    if units not in UNIT_SETS:
        raise PaintError(f"units must be one of {', '.join(UNIT_SETS)}, got {units!r}")
    if units == "ace" and not layer_result.get("ace_units"):
        raise PaintError("this dissection has no ACE-optimised unit sets for the layer: run "
                         "`analyze dissect --unit_set=ace` (with a differentiable segmenter)")
    sets = layer_result["best_units"] if units == "iou" else layer_result["ace_units"]
    table = np.asarray(layer_result["iou"])
    names = list(layer_result["conditional_mean"])
    concepts = []
    for name, best in sets.items():
        chosen = best["units"][:num_units]
        means = layer_result["conditional_mean"][name]
        concepts.append({"name": name, "units": chosen,
                         "iou": [float(table[u, names.index(name)]) for u in chosen],
                         "values": [means[u] for u in chosen]})
    return concepts


class Painter:
    """Applies the page's edits: the generator, its dissection and the segmenter.

    Requests are stateless (each carries every edit so far), and calls into the model are
    serialised by a lock, so concurrent requests cannot see each other's edits.

    Args:
        generator: a functional Keras model z -> images in [-1, 1].
        dissection: the dict of a dissect.json of this generator.
        segmenter: segmenters.Segmenter naming the same concepts.
        num_units: units per concept.
        units: "iou" (each concept's IoU-ranked units) or "ace" (its ACE-optimised ones).
    """

    def __init__(self, generator, dissection, segmenter, num_units=20, units="iou",
                 discriminator=None, preprocess="crop_resize"):
        self.generator, self.segmenter = generator, segmenter
        self.discriminator, self.preprocess = discriminator, preprocess
        self.size = generator.output.shape[1]
        self.z_dim = generator.input.shape[-1]
        self.units = units
        self.layers = {name: layer_concepts(result, num_units, units)
                       for name, result in dissection["layers"].items()
                       if units == "iou" or result.get("ace_units")}
        self.default_layer = dissection.get("best_layer") or next(iter(self.layers))
        self._splits, self._lock = {}, threading.Lock()

    def info(self):
        """What the page needs: sizes, layers and each layer's concepts with units and IoU."""
        return {"image_size": self.size, "z_dim": self.z_dim, "modes": list(MODES),
                "units": self.units,
                "default_layer": self.default_layer, "max_seed": MAX_SEED,
                "layers": {name: {"grid": self._split(name).activation_shape[0],
                                  "concepts": [{k: c[k] for k in ("name", "units", "iou")}
                                               for c in concepts]}
                           for name, concepts in self.layers.items()}}

    def _split(self, layer):
        with self._lock:
            if layer not in self._splits:
                self._splits[layer] = nethook.SplitGenerator(self.generator, layer)
            return self._splits[layer]

    def complete(self, request):
        """A request (edits with concept, mode, region) -> a complete record (units, values
        from the dissection)."""
        if not isinstance(request, dict):
            raise PaintError("the request must be a JSON object")
        layer = request.get("layer", self.default_layer)
        if layer not in self.layers:
            raise PaintError(f"unknown layer {layer!r}; dissected layers: "
                             f"{', '.join(self.layers)}")
        concepts = {c["name"]: c for c in self.layers[layer]}
        edits = request.get("edits", [])
        if not isinstance(edits, list):
            raise PaintError("edits must be a list")
        complete = []
        for i, edit in enumerate(edits):
            name = edit.get("concept") if isinstance(edit, dict) else None
            if name not in concepts:
                raise PaintError(f"edit {i}: unknown concept {name!r}; concepts of {layer}: "
                                 f"{', '.join(concepts)}")
            order = np.argsort(concepts[name]["units"])  # ChannelEdit wants increasing units
            complete.append({"concept": name, "mode": edit.get("mode"),
                             "units": [concepts[name]["units"][j] for j in order],
                             "values": [concepts[name]["values"][j] for j in order],
                             "region": edit.get("region")})
            if edit.get("mode") == "remove":
                del complete[-1]["values"]
        origin = ({"z": request["z"]} if request.get("z") is not None
                  else {"seed": request.get("seed")})
        return {**origin, "layer": layer, "edits": complete}

    def invert(self, request):
        """Answers /api/invert: {"image": base64 of an image file} -> its z (what the page's
        edits then carry in place of a seed), the PSNR of G(z) against it, and both images
        (PNG, base64): the upload after the run's preprocessing, and G(z)."""
        from dcgan_keras.analysis import invert as invert_lib
        from dcgan_keras.data import preprocessing
        start = time.perf_counter()
        if not isinstance(request, dict) or not isinstance(request.get("image"), str):
            raise PaintError('the request must be {"image": the base64 of an image file}')
        try:
            data = base64.b64decode(request["image"].split(",")[-1], validate=True)
        except (ValueError, binascii.Error):
            raise PaintError("image is not base64 text") from None
        try:
            with PIL.Image.open(io.BytesIO(data)) as header:  # reads the size only
                width, height = header.size
        except (OSError, PIL.Image.DecompressionBombError):
            raise PaintError("the upload is not an image (JPEG, PNG, GIF, BMP or WebP)") from None
        if width * height > MAX_UPLOAD_PIXELS:
            raise PaintError(f"the image is {width}x{height}: at most {MAX_UPLOAD_PIXELS} "
                             "pixels; scale it down first")
        try:
            pixels = preprocessing.decode(tf.constant(data), 3)
        except tf.errors.InvalidArgumentError:
            raise PaintError("the upload does not decode as an image") from None
        image = preprocessing.preprocess(pixels, self.size, self.generator.output.shape[-1],
                                         self.preprocess).numpy()[None]
        with self._lock:
            result = invert_lib.invert(self.generator, self.discriminator, image,
                                       INVERT_STARTS, INVERT_STEPS,
                                       feature_weight=1.0 if self.discriminator else 0.0)
        return {"z": [float(v) for v in result.z[0]], "psnr": float(result.psnr[0]),
                "original": png_base64(to_uint8(image)[0].numpy()),
                "image": png_base64(to_uint8(result.reconstructions)[0].numpy()),
                "ms": round(1000 * (time.perf_counter() - start), 1)}

    def edit(self, request):
        """Answers /api/edit: the original and the edited image (PNG, base64), the record,
        and each edit's concept share inside its region before and after it."""
        start = time.perf_counter()
        record = self.complete(request)
        split = self._split(record["layer"])
        seed, checked = check_record(record, split, self.size)
        with self._lock:
            images = render(split, seed_latent(seed, self.generator), checked)
        labels = self.segmenter(images)
        concepts = self.segmenter.concepts
        shares = [{"concept": e["concept"], "mode": e["mode"],
                   "before": float(np.mean(labels[i][mask] == concepts.index(e["concept"]))),
                   "after": float(np.mean(labels[i + 1][mask] == concepts.index(e["concept"])))}
                  for i, (e, mask, _) in enumerate(checked)]
        return {"seed": record.get("seed"), "layer": record["layer"], "record": record,
                "shares": shares,
                "original": png_base64(images[0]), "image": png_base64(images[-1]),
                "cells": checked[-1][2].astype(int).tolist() if checked else None,
                "ms": round(1000 * (time.perf_counter() - start), 1)}
