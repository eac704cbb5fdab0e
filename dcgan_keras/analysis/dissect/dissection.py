"""GAN Dissection (Bau et al. 2018, arXiv:1811.10597, sections 3.1-3.2): which units of a
G layer draw which concept, and what happens when they are removed or inserted.

Dissection: each unit's activation map is upsampled (bilinear) to the image size and
thresholded; the region a_u > t is compared with the segmenter's mask of each concept c
over N generated samples:

    IoU(u, c) = sum |{a_u > t} & {s = c}| / sum |{a_u > t} | {s = c}|  (over all samples)

The threshold t is chosen one of two ways (`threshold`):
- "iqr" (the default, GAN Dissection's for generators): per unit AND concept, the level
  that maximises the information quality ratio I(unit; concept) / H(unit, concept); a
  unit is interpretable for a concept when IoU > 0.05 and IQR > 0.01 (`iqr.py`);
- "quantile" (Network Dissection's, 2017): per unit, its top quantile q over all samples
  (P(a_u > t_u) = q; the classic q = 0.5%), the same for every concept. It is exact
  (NumPy's linear-interpolated quantile) yet streamed: only the largest
  ceil((n - 1) q) + 1 values of each unit are kept. With it IoU <= q / a for a concept
  on a share a of the pixels, so a large concept can never pass.

Alongside, each concept's conditional mean activation of every unit is taken (the mean
over layer cells weighted by the share of the cell the concept covers): what insertion
writes. The interventions (`intervention.py`, `ace.py`) then remove and insert unit sets
ranked by IoU, optimised for the causal effect, or drawn at random.
"""
import numpy as np
import tensorflow as tf
from scipy import ndimage

from dcgan_keras.analysis import nethook, outputs
from dcgan_keras.analysis.dissect import ace, intervention, iqr as iqr_lib
from dcgan_keras.utils import charts
from dcgan_keras.workdir import weights_fingerprint

THRESHOLDS = ("iqr", "quantile")
UNIT_SETS = ("iou", "ace")
FORMAT = 2  # dissect.json's layout: 2 = per-(unit, concept) thresholds, conditional means


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


def _iqr_at(inter, unit_area, concept_area, total):
    """IQR [c, K] of fixed per-unit thresholds, from the summed counts."""
    tp = inter / total
    fp = unit_area[:, None] / total - tp
    fn = concept_area[None, :] / total - tp
    tn = np.clip(1.0 - tp - fp - fn, 0.0, 1.0)
    mi, je = iqr_lib.information(tp, np.clip(fp, 0, 1), np.clip(fn, 0, 1), tn)
    return np.where(je > 0, mi / np.where(je > 0, je, 1.0), 0.0)


def dissect_layer(split, z, labels, num_concepts, threshold="iqr", q=0.005, batch_size=50,
                  progress=None, seed=0):
    """Dissects one layer.

    Args:
        split: a nethook.SplitGenerator at the layer.
        z: [N, z_dim] latent vectors.
        labels: the segmenter's label maps [N, S, S] of G(z).
        num_concepts: K (labels are < K).
        threshold: "iqr" or "quantile" (see the module doc).
        q: the top quantile of threshold="quantile".
        batch_size: samples per batch.
        progress: optional callable(str).
        seed: seed of the sample the IQR's candidate levels come from.
    Returns:
        {"thresholds": [c, K], "iou": [c, K], "iqr": [c, K], "fraction": [c, K] (the top
        fraction of each chosen level), "interpretable": bool [c, K], "conditional_mean":
        [K, c], "peaks": [N, c] (each sample's max activation)}.
    """
    if threshold not in THRESHOLDS:
        raise ValueError(f"threshold must be one of {', '.join(THRESHOLDS)}, got {threshold!r}")
    n, size = len(z), labels.shape[1]
    grid, _, channels = split.activation_shape
    total = n * size * size
    stream = (iqr_lib.LevelSample(total, channels, seed=seed) if threshold == "iqr"
              else TopQuantile(q, total, channels))
    for i in range(0, n, batch_size):  # pass 1: the levels
        up = upsample(split.activations(z[i:i + batch_size]), size)
        stream.update(up.reshape(-1, channels))
        if progress:
            progress(f"{split.layer}: levels {min(i + batch_size, n)}/{n} samples")
    if threshold == "iqr":
        levels = stream.levels()
        counts = iqr_lib.LevelCounts(levels, num_concepts)
    else:
        levels = stream.result()
        inter = np.zeros([channels, num_concepts])
        unit_area, concept_area = np.zeros([channels]), np.zeros([num_concepts])
    weighted, weights, peaks = np.zeros([num_concepts, channels]), np.zeros([num_concepts]), []
    for i in range(0, n, batch_size):  # pass 2: the counts and conditional means
        acts = split.activations(z[i:i + batch_size])
        batch_labels = labels[i:i + batch_size]
        peaks.append(acts.max(axis=(1, 2)))
        presence = np.stack([intervention.cell_presence(batch_labels, k, grid)
                             for k in range(num_concepts)], -1)  # [B, h, w, K]
        weighted += np.einsum("bhwk,bhwc->kc", presence, acts)
        weights += presence.sum(axis=(0, 1, 2))
        up = upsample(acts, size)
        if threshold == "iqr":
            counts.update(up.reshape(-1, channels), batch_labels)
        else:
            c = iou_counts(up > levels, batch_labels, num_concepts)
            inter, unit_area, concept_area = inter + c[0], unit_area + c[1], concept_area + c[2]
        if progress:
            progress(f"{split.layer}: counts {min(i + batch_size, n)}/{n} samples")
    result = {"peaks": np.concatenate(peaks),
              "conditional_mean": weighted / np.maximum(weights, 1e-12)[:, None]}
    if threshold == "iqr":
        chosen = iqr_lib.choose(levels, *counts.tables())
        result.update(thresholds=chosen["level"], iou=chosen["iou"], iqr=chosen["iqr"],
                      fraction=chosen["fraction"], interpretable=chosen["interpretable"])
    else:
        table = iou(inter, unit_area, concept_area)
        iqr = _iqr_at(inter, unit_area, concept_area, total)
        fraction = np.full(table.shape, q)
        result.update(thresholds=np.repeat(levels[:, None], num_concepts, 1), iou=table,
                      iqr=iqr, fraction=fraction,
                      interpretable=iqr_lib.interpretable(table, iqr, fraction))
    return result


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


def _top_units(iou_table, concept, k):
    return [int(u) for u in np.argsort(-iou_table[:, concept], kind="stable")[:k]]


def layer_summary(d, concepts, ignore=()):
    """Per layer: how many units are interpretable (IoU > 0.05 and IQR > 0.01) for each
    concept not in `ignore` (a unit may count for several), how many for any, and each
    unit's best concept by IoU."""
    keep = [i for i, c in enumerate(concepts) if c not in ignore]
    good = d["interpretable"][:, keep]
    # A unit's best concept: its interpretable concept of largest IoU, else its largest IoU.
    best = np.asarray(keep)[np.argmax(d["iou"][:, keep] + 2.0 * good, axis=1)]
    rows = np.arange(len(best))
    return {"units": len(best), "interpretable_units": int(good.any(axis=1).sum()),
            "interpretable": {concepts[c]: int(good[:, j].sum()) for j, c in enumerate(keep)},
            "best_concept": [concepts[c] if good[u].any() else None
                             for u, c in enumerate(best)],
            "best_iou": d["iou"][rows, best].tolist()}


def _pairs_grid(out_dir, name, before, after, per_row=8, rows=4):
    n = min(len(before), per_row * rows)
    per_row = min(per_row, n)
    parts = [part for i in range(0, n, per_row)
             for part in (before[i:i + per_row], after[i:i + per_row])]
    return outputs.write_grid(out_dir, name, np.concatenate(parts), cols=per_row)


def _json(effect):
    return {k: v for k, v in effect.items() if k not in ("effects", "images")}


def interpretable_chart(out_dir, result, ignore):
    """interpretable_units.png: per layer, the units interpretable for each concept."""
    concepts = [c for c in result["concepts"] if c not in ignore]
    layers = list(result["layers"])
    values = [[result["layers"][n]["interpretable"][c] for c in concepts] for n in layers]
    image = charts.grouped_bars(layers, concepts, values, title=(
        f"units interpretable for each concept ({result['threshold']} thresholds; "
        "IoU > 0.05, IQR > 0.01)"))
    return outputs.write_grid(out_dir, "interpretable_units.png", image[None], cols=1)


def intervene(split, segmenter, z, concept, unit_sets, values, out_dir, per_sample=8,
              seed=0, progress=None):
    """Ablation and insertion of each named unit set for one concept.

    Ablation is measured on the samples of z that show the concept; insertion writes the
    concept-conditional means `values` [c] at cells where it is absent. Writes
    ablation_<concept>_<set>.png, insertion_<concept>_<set>.png (rows alternate before /
    after; the insertion's cell is outlined) and insertion_rate_<concept>_<set>.png (the
    rate at which insertion takes, by location).
    """
    name = segmenter.concepts[concept]
    shown = intervention.containing(split, segmenter, z, concept)
    result = {"samples_with_concept": len(shown), "samples": len(z), "ablation": {},
              "insertion": {}}
    edit = intervention.ReusableEdit(split.activation_shape)
    for set_name, units in unit_sets.items():
        if progress:
            progress(f"{split.layer}: ablating and inserting {len(units)} {set_name} units of "
                     f"{name} ({len(shown)} of {len(z)} samples show it)")
        a = intervention.causal_effect(split, segmenter, shown,
                                       edit.load(intervention.ablation(units)), concept)
        if a["images"] is not None:
            _pairs_grid(out_dir, f"ablation_{name}_{set_name}.png", *a["images"])
        result["ablation"][set_name] = _json(a)
        n = intervention.insert_at_locations(split, segmenter, z, concept, units, values,
                                             per_sample, seed)
        if n["images"] is not None:
            before, after, cells = n["images"]
            edges = [outline(x, cells) for x in (before, after)]
            _pairs_grid(out_dir, f"insertion_{name}_{set_name}.png", *edges)
        tries, takes = np.asarray(n["tries_at"], float), np.asarray(n["takes_at"], float)
        rate = np.where(tries > 0, takes / np.maximum(tries, 1), np.nan)
        outputs.write_grid(out_dir, f"insertion_rate_{name}_{set_name}.png", charts.heatmap(
            rate, title=f"{name}, {set_name} units: % taken")[None], cols=1)
        result["insertion"][set_name] = _json(n)
    return result


def run(generator, segmenter, out_dir, z, layers, threshold="iqr", q=0.005, units="iou",
        num_units=20, num_examples=6, show_units=4, concept=None, ignore=("background",),
        intervene_z=None, ace_z=None, ace_epochs=5, per_sample=8, seed=0, progress=None):
    """The `dissect` verb: dissect `layers`, then intervene on the best layer's concepts.

    Writes dissect.json, dissect_<layer>_<concept>.png (rows: a concept's best units, each
    with its top samples and the unit's region outlined), interpretable_units.png, and,
    when intervene_z is given, the intervention grids of `intervene` for each concept.

    Args:
        generator: the G (a functional model z -> images in [-1, 1]).
        segmenter: segmenters.Segmenter.
        out_dir: output directory.
        z: [N, z_dim] samples to dissect.
        layers: G layer names.
        threshold: "iqr" (GAN Dissection's) or "quantile" (Network Dissection's q).
        q: the top quantile of threshold="quantile".
        units: "iou" (the interventions use IoU-ranked and random sets) or "ace" (also
            sets optimised for the causal effect, `ace.py`; needs a differentiable
            segmenter). The paint page offers the sets computed here.
        num_units: k, the units of each set.
        num_examples: example images per unit.
        show_units: best units shown per concept.
        concept: intervene on this concept only (default: every concept not ignored).
        ignore: concept names left out of the summary and of the interventions.
        intervene_z: [M, z_dim] samples for the interventions (None: none).
        ace_z: [M, z_dim] samples alpha is optimised on (default: z).
        ace_epochs: passes of the alpha optimisation.
        per_sample: insertion locations tried per sample.
        seed: seed of the random units, of the insertion cells and of the IQR levels.
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
    if units not in UNIT_SETS:
        raise ValueError(f"units must be one of {', '.join(UNIT_SETS)}, got {units!r}")
    if units == "ace" and getattr(segmenter, "probabilities", None) is None:
        raise ValueError(f"--unit_set=ace needs a differentiable segmenter (class probabilities)"
                         f"; {segmenter.name!r} has none. Train one with python -m "
                         "dcgan_keras.binaries.train_segmenter, or use --unit_set=iou")
    labels = np.concatenate([segmenter(outputs.generator_fn(generator)(z[i:i + 256]))
                             for i in range(0, len(z), 256)])
    if labels.max() >= len(concepts) or labels.min() < 0:
        raise ValueError(f"segmenter labels span {labels.min()}..{labels.max()}, but it names "
                         f"{len(concepts)} concepts")
    result = {"format": FORMAT, "samples": len(z), "threshold": threshold, "quantile": q,
              "concepts": list(concepts),
              "generator_fingerprint": weights_fingerprint(generator),  # paint checks it
              "concept_share": {c: float(np.mean(labels == i)) for i, c in enumerate(concepts)},
              "layers": {}}
    splits, tables = {}, {}
    for layer in layers:
        split = splits[layer] = nethook.SplitGenerator(generator, layer)
        d = tables[layer] = dissect_layer(split, z, labels, len(concepts), threshold, q,
                                          progress=progress, seed=seed)
        best_units = {}
        for k, name in enumerate(concepts):
            if name in ignore and name != concept:
                continue
            top = _top_units(d["iou"], k, num_units)
            best_units[name] = {"units": top, "iou": d["iou"][top, k].tolist(),
                                "iqr": d["iqr"][top, k].tolist()}
            shown = top[:show_units]
            outputs.write_grid(out_dir, f"dissect_{layer}_{name}.png", unit_examples(
                split, z, d["peaks"], shown, d["thresholds"][:, k], num_examples),
                cols=num_examples)
        result["layers"][layer] = dict(
            layer_summary(d, concepts, ignore), activation_shape=split.activation_shape,
            thresholds=d["thresholds"].tolist(), iou=d["iou"].tolist(), iqr=d["iqr"].tolist(),
            fraction=d["fraction"].tolist(),
            conditional_mean={c: d["conditional_mean"][k].tolist()
                              for k, c in enumerate(concepts)},
            best_units=best_units)
    best_layer = max(layers, key=lambda n: (result["layers"][n]["interpretable_units"],
                                            -layers.index(n)))
    result["best_layer"] = best_layer
    interpretable_chart(out_dir, result, ignore)
    targets = [concept] if concept else [c for c in concepts if c not in ignore]
    split, d = splits[best_layer], tables[best_layer]
    if units == "ace":
        layer = result["layers"][best_layer]
        layer["ace_units"] = {}
        for name in targets:
            k = concepts.index(name)
            alpha = ace.optimise(split, segmenter, z if ace_z is None else ace_z, k,
                                 d["iou"][:, k], d["conditional_mean"][k], ace_epochs,
                                 seed=seed, progress=progress)
            top = ace.top_units(alpha["alpha"], num_units)
            layer["ace_units"][name] = {"units": top, "alpha": alpha["alpha"].tolist(),
                                        "loss": alpha["loss"]}
    if intervene_z is not None:
        result["intervention"] = {"layer": best_layer, "concepts": {}}
        for name in targets:
            k = concepts.index(name)
            sets = {"iou": _top_units(d["iou"], k, num_units)}
            if units == "ace":
                sets["ace"] = result["layers"][best_layer]["ace_units"][name]["units"]
            sets["random"] = intervention.random_units(
                split.activation_shape[-1], num_units,
                exclude=set().union(*map(set, sets.values())), seed=seed)
            r = intervene(split, segmenter, intervene_z, k, sets, d["conditional_mean"][k],
                          out_dir, per_sample, seed, progress)
            result["intervention"]["concepts"][name] = dict(r, units=sets)
    outputs.write_json(out_dir, "dissect.json", result)
    return result
