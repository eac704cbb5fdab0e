"""GAN Dissection (Bau et al. 2018, arXiv:1811.10597, sections 3.1-3.2): which units of a
G layer draw which concept, and what happens when they are removed or inserted.

Dissection: each unit's activation map is upsampled (bilinear) to the image size and
thresholded at the unit's own top quantile over all samples (t_u: P(a_u > t_u) = q, the
paper's q = 0.5%); the region a_u > t_u is compared with the segmenter's mask of each
concept c over N generated samples:

    IoU(u, c) = sum |{a_u > t_u} & {s = c}| / sum |{a_u > t_u} | {s = c}|  (over all samples)

The threshold is exact (NumPy's linear-interpolated quantile) yet streamed: only the
largest ceil((n - 1) q) + 1 values of each unit are kept, never all maps.

Intervention (section 3.2): the top-k units of a concept are ablated (set to 0 at every
position) or inserted (set to their threshold t_u inside a region); the average causal
effect is the mean over samples of the change in the concept's pixel share, with and
without the edit on the same z, with a 95% normal confidence interval; k random units of
the same layer are the baseline. The edits go between nethook.SplitGenerator's halves.
"""
import numpy as np
import tensorflow as tf
from scipy import ndimage

from dcgan_keras.analysis import nethook, outputs
from dcgan_keras.workdir import weights_fingerprint

Z_95 = 1.959964  # two-sided 95% normal quantile


class TopQuantile:
    """Streaming, exact per-channel quantile level t with P(x > t) = q over `total` values.

    Equals np.quantile(x, 1 - q, axis=0) (linear interpolation) of all values seen, but
    keeps only the top m = ceil((total - 1) q) + 1 values of each channel.

    Args:
        q: the top fraction (0 < q < 1).
        total: how many values per channel will be seen (known in advance: N * H * W).
        channels: number of channels.
    """

    def __init__(self, q, total, channels):
        if not 0 < q < 1:
            raise ValueError(f"the top quantile must be in (0, 1), got {q}")
        self.q, self.total, self.seen = float(q), int(total), 0
        self.position = (self.total - 1) * (1.0 - self.q)  # in the ascending order
        self.keep = min(self.total, int(np.ceil((self.total - 1) * self.q)) + 1)
        self.top = np.full([0, channels], -np.inf, np.float32)

    def update(self, values):
        """Adds values [P, channels]."""
        values = np.asarray(values, np.float32)
        self.seen += len(values)
        merged = np.concatenate([self.top, values])
        if len(merged) > self.keep:
            merged = -np.partition(-merged, self.keep - 1, axis=0)[:self.keep]
        self.top = merged

    def result(self):
        """The per-channel levels [channels] (float32)."""
        if self.seen != self.total:
            raise ValueError(f"saw {self.seen} values per channel, expected {self.total}")
        top = -np.sort(-self.top, axis=0)  # descending: ascending index j is top[total-1-j]
        lo, hi = int(np.floor(self.position)), int(np.ceil(self.position))
        low, high = (top[self.total - 1 - j].astype(np.float64) for j in (lo, hi))
        return (low + (self.position - lo) * (high - low)).astype(np.float32)


def upsample(activations, size):
    """Activations [B, h, w, c] -> [B, size, size, c], bilinear (the paper's)."""
    return tf.image.resize(activations, [size, size], method="bilinear").numpy()


def iou_counts(unit_masks, labels, num_concepts):
    """Intersections [c, K], unit areas [c], concept areas [K] of boolean unit masks
    [B, S, S, c] and label maps [B, S, S] (values < K)."""
    masks = unit_masks.reshape(-1, unit_masks.shape[-1]).astype(np.float32)
    onehot = np.eye(num_concepts, dtype=np.float32)[labels.reshape(-1)]
    return masks.T @ onehot, masks.sum(0), onehot.sum(0)


def iou(intersection, unit_area, concept_area):
    """IoU [c, K] from the summed counts (0 where the union is empty)."""
    union = unit_area[:, None] + concept_area[None, :] - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1), 0.0)


def dissect_layer(split, z, labels, num_concepts, q=0.005, batch_size=100, progress=None):
    """Dissects one layer: thresholds, IoU with each concept, per-sample peak activations.

    Args:
        split: a nethook.SplitGenerator at the layer.
        z: [N, z_dim] latent vectors.
        labels: the segmenter's label maps [N, S, S] of G(z).
        num_concepts: K (labels are < K).
        q: the top quantile.
        batch_size: samples per batch.
        progress: optional callable(str).
    Returns:
        {"thresholds": [c], "iou": [c, K], "peaks": [N, c] (each sample's max activation)}.
    """
    n, size = len(z), labels.shape[1]
    channels = split.activation_shape[-1]
    quantile = TopQuantile(q, n * size * size, channels)
    for i in range(0, n, batch_size):  # pass 1: the thresholds
        up = upsample(split.activations(z[i:i + batch_size]), size)
        quantile.update(up.reshape(-1, channels))
    thresholds = quantile.result()
    inter = np.zeros([channels, num_concepts])
    unit_area, concept_area = np.zeros([channels]), np.zeros([num_concepts])
    peaks = []
    for i in range(0, n, batch_size):  # pass 2: the IoU
        acts = split.activations(z[i:i + batch_size])
        peaks.append(acts.max(axis=(1, 2)))
        counts = iou_counts(upsample(acts, size) > thresholds, labels[i:i + batch_size],
                            num_concepts)
        inter, unit_area, concept_area = inter + counts[0], unit_area + counts[1], (
            concept_area + counts[2])
        if progress:
            progress(f"{split.layer}: {min(i + batch_size, n)}/{n} samples")
    return {"thresholds": thresholds, "iou": iou(inter, unit_area, concept_area),
            "peaks": np.concatenate(peaks)}


def outline(images, masks, colour=(1.0, 1.0, -1.0)):
    """Images [N, S, S, 3] in [-1, 1] with the boundary of masks [N, S, S] drawn."""
    out = np.array(images, np.float32)
    for i, mask in enumerate(np.asarray(masks, bool)):
        edge = mask & ~ndimage.binary_erosion(mask, border_value=0)
        out[i][edge] = colour[:out.shape[-1]]
    return out


def unit_examples(split, z, peaks, units, thresholds, num_examples):
    """For each unit, its `num_examples` highest-peak samples with the unit's region
    outlined: images [len(units) * num_examples, S, S, C] (row-major by unit)."""
    rows = []
    for u in units:
        best = np.argsort(-peaks[:, u], kind="stable")[:num_examples]
        acts = split.activations(z[best])
        images = split.images_from(acts)
        rows.append(outline(images, upsample(acts, images.shape[1])[..., u] > thresholds[u]))
    return np.concatenate(rows)


def box_mask(box, size):
    """bool [size, size]: True on the pixels of the box (x0, y0, x1, y1), x1 and y1
    excluded."""
    x0, y0, x1, y1 = box
    mask = np.zeros([size, size], bool)
    mask[y0:y1, x0:x1] = True
    return mask


def region_cells(region, grid, image_size=None):
    """[grid, grid] float32 weights: 1 on the layer cells at least half covered by the
    region, 0 elsewhere. The one rule by which an image region becomes a layer's cells
    (dissection's insertion, and every edit of the paint page).

    Why half covered (and not "the cell's centre is in the region"): a region may be any
    painted mask, and a cell of an even number of pixels has no centre pixel; the share
    of the cell's pixels that the region covers is defined for any mask and any cell
    size, and treats a cell the same whichever of its pixels are covered. For a box on
    cell boundaries (dissect's default, the central half) the two rules agree.

    Args:
        region: a bool [S, S] mask of image pixels, or a box (x0, y0, x1, y1) of an
            image_size x image_size image.
        grid: the layer's side (it must divide the image side).
        image_size: the image side, for a box.
    Raises:
        ValueError: the grid does not tile the image, or no cell is half covered.
    """
    name = "the region" if image_size is None else f"the region {list(region)}"
    if image_size is not None:
        region = box_mask(region, image_size)
    mask = np.asarray(region, bool)
    size = mask.shape[0]
    if size % grid:
        raise ValueError(f"a {grid}x{grid} layer does not tile a {size}x{size} image")
    side = size // grid
    cells = (mask.reshape(grid, side, grid, side).mean(axis=(1, 3)) >= 0.5).astype(np.float32)
    if not cells.any():
        raise ValueError(f"{name} covers no cell of the {grid}x{grid} layer (a cell is "
                         f"{side}x{side} pixels and counts when at least half of it is "
                         "covered); make the region larger")
    return cells


def ablation(units):
    """The edit that sets `units` to 0 at every position."""
    return nethook.ChannelEdit(units, 0.0)


def insertion(units, thresholds, cells):
    """The edit that sets each unit to its threshold inside `cells` ([h, w] weights)."""
    units = sorted(int(u) for u in units)  # ChannelEdit orders values by channel
    return nethook.ChannelEdit(units, [float(thresholds[u]) for u in units], where=cells)


class ReusableEdit:
    """One edit object whose content changes: x' = (1 - m) * x + m * v with m [h, w, c] and
    v [c] held in variables, so every intervention runs through one traced function of
    SplitGenerator (a new edit object per intervention would trace a new one each time).

    Args:
        activation_shape: [h, w, c] of the layer.
    """

    def __init__(self, activation_shape):
        self.mask = tf.Variable(tf.zeros(activation_shape), trainable=False)
        self.value = tf.Variable(tf.zeros(activation_shape[-1:]), trainable=False)

    def load(self, edit):
        """Makes this edit do what nethook.ChannelEdit `edit` does; returns self."""
        h, w, c = self.mask.shape
        onehot = np.zeros([c], np.float32)
        onehot[edit.channels] = 1.0
        value = np.zeros([c], np.float32)
        value[edit.channels] = edit.value
        where = np.ones([h, w], np.float32) if edit.where is None else edit.where
        self.mask.assign(np.asarray(where, np.float32)[..., None] * onehot)
        self.value.assign(value)
        return self

    def __call__(self, x):
        return (1.0 - self.mask) * x + self.mask * self.value


def causal_effect(split, segmenter, z, edit, concept, within=None, batch_size=100):
    """Average causal effect of `edit` on the share of `concept`'s pixels.

    Args:
        split: nethook.SplitGenerator.
        segmenter: images -> label maps, with `concepts` (segmenters.Segmenter).
        z: [N, z_dim].
        edit: the edit of the split layer.
        concept: the concept's label.
        within: optional bool [S, S]: the share is measured inside it only.
        batch_size: samples per batch.
    Returns:
        A dict: ace, ci95 (half-width), share_before, share_after, removed (the fraction of
        the concept's pixels that the edit removes: 1 - after / before), all_shares
        ({concept: [share before, share after]}, the control: what else changes), per-sample
        effects, and the first images before and after (for grids).
    """
    before, after, shown = [], [], None
    num_concepts = len(segmenter.concepts)
    counts = np.zeros([2, num_concepts])  # every concept's pixels, before and after
    for i in range(0, len(z), batch_size):
        acts = split.activations(z[i:i + batch_size])
        plain, edited = split.images_from(acts), split.images_from(acts, edit)
        if shown is None:
            shown = (plain, edited)
        for j, (images, shares) in enumerate(((plain, before), (edited, after))):
            labels = segmenter(images)
            labels = labels[:, within] if within is not None else labels.reshape(len(labels), -1)
            shares.append((labels == concept).mean(-1))
            counts[j] += np.bincount(labels.reshape(-1), minlength=num_concepts)
    before, after = np.concatenate(before), np.concatenate(after)
    counts /= counts.sum(axis=1, keepdims=True)
    effect = after - before
    ci = Z_95 * effect.std(ddof=1) / np.sqrt(len(effect)) if len(effect) > 1 else 0.0
    return {"ace": float(effect.mean()), "ci95": float(ci),
            "share_before": float(before.mean()), "share_after": float(after.mean()),
            "removed": float(1.0 - after.mean() / before.mean()) if before.mean() > 0 else 0.0,
            "all_shares": {name: [float(counts[0, k]), float(counts[1, k])]
                           for k, name in enumerate(segmenter.concepts)},
            "effects": effect, "images": shown}


def _top_units(iou_table, concept, k):
    return [int(u) for u in np.argsort(-iou_table[:, concept], kind="stable")[:k]]


def layer_summary(iou_table, concepts, ignore=(), cutoff=0.05):
    """Per layer: units whose best concept (not in `ignore`) has IoU > cutoff, by concept."""
    keep = [i for i, c in enumerate(concepts) if c not in ignore]
    best = np.asarray(keep)[np.argmax(iou_table[:, keep], axis=1)]
    best_iou = iou_table[np.arange(len(best)), best]
    matched = best_iou > cutoff
    return {"units": len(best), "matched_units": int(matched.sum()), "cutoff": cutoff,
            "by_concept": {concepts[c]: int((matched & (best == c)).sum()) for c in keep},
            "best_concept": [concepts[c] for c in best], "best_iou": best_iou.tolist()}


def _pairs_grid(out_dir, name, before, after, per_row=8, rows=4):
    n = min(len(before), per_row * rows)
    per_row = min(per_row, n)
    parts = [part for i in range(0, n, per_row)
             for part in (before[i:i + per_row], after[i:i + per_row])]
    return outputs.write_grid(out_dir, name, np.concatenate(parts), cols=per_row)


def _effect_json(effect):
    return {k: v for k, v in effect.items() if k not in ("effects", "images")}


def intervene(split, segmenter, z, concept, units, thresholds, region, seed=0):
    """Ablation and insertion of `units` and of as many random units (the baseline).

    Returns:
        {"ablation": {...}, "insertion": {...}} each with "units" and "random" effects
        (see causal_effect; insertion's share is measured inside the region), plus the
        random units and the images for the grids.
    """
    h, _, channels = split.activation_shape
    others = [u for u in range(channels) if u not in set(units)]
    rng = np.random.default_rng(seed)
    random_units = sorted(int(u) for u in rng.choice(others, min(len(units), len(others)),
                                                     replace=False))
    image_size = split.tail.output.shape[1]
    inside = box_mask(region, image_size)
    cells = region_cells(inside, h)
    result = {"random_units": random_units}
    edit = ReusableEdit(split.activation_shape)
    for name, make, within in (("ablation", ablation, None),
                               ("insertion", lambda us: insertion(us, thresholds, cells),
                                inside)):
        result[name] = {kind: causal_effect(split, segmenter, z, edit.load(make(us)), concept,
                                            within)
                        for kind, us in (("units", units), ("random", random_units))}
    result["inside"] = inside
    return result


def run(generator, segmenter, out_dir, z, layers, q=0.005, num_units=20, num_examples=6,
        show_units=4, concept=None, ignore=("background",), cutoff=0.05, region=None,
        intervene_z=None, seed=0, progress=None):
    """The `dissect` verb: dissect `layers`, then intervene on the best concept's top units.

    Writes dissect.json, dissect_<layer>_<concept>.png (rows: a concept's best units, each
    with its top samples and the unit's region outlined), and, when intervene_z is given,
    ablation.png and insertion.png (rows alternate before / after the edit; the insertion's
    region is outlined).

    Args:
        generator: the G (a functional model z -> images in [-1, 1]).
        segmenter: segmenters.Segmenter.
        out_dir: output directory.
        z: [N, z_dim] samples to dissect.
        layers: G layer names.
        q: top quantile of the thresholds.
        num_units: k, the units intervened on (and the random baseline's size).
        num_examples: example images per unit.
        show_units: best units shown per concept.
        concept: the concept intervened on (default: the best non-ignored concept of the
            layer with the most matched units: the highest mean IoU of its top-k units).
        ignore: concept names left out of the summary and of the default choice.
        cutoff: IoU above which a unit matches a concept (the paper's 0.05).
        region: insertion region (x0, y0, x1, y1) in pixels (default: the central half).
        intervene_z: [M, z_dim] samples for the intervention (None: no intervention).
        seed: seed of the random units.
        progress: optional callable(str).
    Returns:
        The JSON dict.
    """
    concepts = segmenter.concepts
    if concept is not None and concept not in concepts:
        raise ValueError(f"unknown concept {concept!r}; the segmenter's: {', '.join(concepts)}")
    if all(c in ignore for c in concepts):
        raise ValueError(f"every concept of the segmenter ({', '.join(concepts)}) is ignored")
    if len(z) < 1 or num_units < 1:
        raise ValueError(f"dissection needs at least one sample and one unit, got {len(z)} "
                         f"samples and {num_units} units")
    labels = np.concatenate([segmenter(outputs.generator_fn(generator)(z[i:i + 256]))
                             for i in range(0, len(z), 256)])
    if labels.max() >= len(concepts) or labels.min() < 0:
        raise ValueError(f"segmenter labels span {labels.min()}..{labels.max()}, but it names "
                         f"{len(concepts)} concepts")
    result = {"samples": len(z), "quantile": q, "concepts": list(concepts),
              "generator_fingerprint": weights_fingerprint(generator),  # paint checks it
              "concept_share": {c: float(np.mean(labels == i)) for i, c in enumerate(concepts)},
              "layers": {}}
    splits, tables = {}, {}
    for layer in layers:
        split = splits[layer] = nethook.SplitGenerator(generator, layer)
        d = tables[layer] = dissect_layer(split, z, labels, len(concepts), q, progress=progress)
        summary = layer_summary(d["iou"], concepts, ignore, cutoff)
        best_units = {}
        for k, name in enumerate(concepts):
            if name in ignore and name != concept:
                continue
            units = _top_units(d["iou"], k, num_units)
            best_units[name] = {"units": units, "iou": d["iou"][units, k].tolist()}
            shown = units[:show_units]
            outputs.write_grid(out_dir, f"dissect_{layer}_{name}.png", unit_examples(
                split, z, d["peaks"], shown, d["thresholds"], num_examples), cols=num_examples)
        result["layers"][layer] = dict(summary, activation_shape=split.activation_shape,
                                       thresholds=d["thresholds"].tolist(),
                                       best_units=best_units)
    best_layer = max(layers, key=lambda n: (result["layers"][n]["matched_units"],
                                            layers.index(n)))
    if concept is None:
        candidates = [c for c in concepts if c not in ignore]
        concept = max(candidates, key=lambda c: np.mean(
            result["layers"][best_layer]["best_units"][c]["iou"]))
    result.update(best_layer=best_layer, concept=concept)
    if intervene_z is not None:
        split, k = splits[best_layer], concepts.index(concept)
        size = generator.output.shape[1]
        region = tuple(region or (size // 4, size // 4, 3 * size // 4, 3 * size // 4))
        units = _top_units(tables[best_layer]["iou"], k, num_units)
        if progress:
            progress(f"{best_layer}: ablating and inserting the top {len(units)} {concept} "
                     f"units and {len(units)} random units on {len(intervene_z)} samples")
        r = intervene(split, segmenter, intervene_z, k, units, tables[best_layer]["thresholds"],
                      region, seed)
        for name in ("ablation", "insertion"):
            before, after = r[name]["units"]["images"]
            if name == "insertion":
                mask = np.broadcast_to(r["inside"], before.shape[:3])
                before, after = outline(before, mask), outline(after, mask)
            _pairs_grid(out_dir, f"{name}.png", before, after)
        result["intervention"] = {
            "layer": best_layer, "concept": concept, "units": units, "region": list(region),
            "random_units": r["random_units"], "samples": len(intervene_z),
            **{name: {kind: _effect_json(r[name][kind]) for kind in ("units", "random")}
               for name in ("ablation", "insertion")}}
    outputs.write_json(out_dir, "dissect.json", result)
    return result
