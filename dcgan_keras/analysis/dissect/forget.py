"""Forgetting to draw an object (Radford et al. 2016, section 6.3.1, figure 6).

"On 150 samples, 52 window bounding boxes were drawn manually. On the second highest
convolution layer features, logistic regression was fit to predict whether a feature
activation was on a window (or not), by using the criterion that activations inside the
drawn bounding boxes are positives and random samples from the same images are negatives.
[...] all feature maps with weights greater than zero (200 in total) were dropped from
all spatial locations." New samples are then drawn with and without the drop.

Boxes are [x0, y0, x1, y1] in pixels of the sample (x0, y0 included, x1, y1 excluded);
an activation cell is "inside" when its centre, mapped to image pixels, lies in a box.
"""
import json

import numpy as np
from scipy import ndimage
from sklearn.linear_model import LogisticRegression

from dcgan_keras.analysis import nethook, outputs


class BoxFileError(ValueError):
    """A box file that does not parse or does not fit the samples."""


def load_boxes(path, num_samples, image_size):
    """Reads a box file: JSON {"sample index": [[x0, y0, x1, y1], ...], ...}.

    Args:
        path: the JSON file.
        num_samples: samples on the sheet (indices must be below it).
        image_size: their side in pixels (boxes must lie inside).
    Returns:
        {index (int): [(x0, y0, x1, y1), ...]}.
    """
    try:
        with open(path) as f:
            raw = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise BoxFileError(f"box file {path} does not parse ({e}); expected JSON like "
                           '{"3": [[x0, y0, x1, y1], ...], ...}') from None
    if not isinstance(raw, dict):
        raise BoxFileError(f"box file {path}: expected a JSON object of sample index -> boxes, "
                           f"got {type(raw).__name__}")
    boxes = {}
    for key, value in raw.items():
        try:
            index = int(key)
            parsed = [tuple(int(v) for v in box) for box in value]
        except (TypeError, ValueError):
            raise BoxFileError(f"box file {path}: entry {key!r} must be a sample index with a "
                               "list of [x0, y0, x1, y1] integer boxes") from None
        if not 0 <= index < num_samples:
            raise IndexError(f"box file {path}: sample index {index} out of range: the sheet "
                             f"has {num_samples} samples (0..{num_samples - 1})")
        for box in parsed:
            if (len(box) != 4 or not 0 <= box[0] < box[2] <= image_size
                    or not 0 <= box[1] < box[3] <= image_size):
                raise BoxFileError(f"box file {path}: box {list(box)} of sample {index} is not "
                                   f"[x0, y0, x1, y1] with 0 <= x0 < x1 <= {image_size}")
        boxes[index] = parsed
    if not boxes:
        raise BoxFileError(f"box file {path} has no samples")
    return boxes


def boxes_from_masks(masks):
    """Bounding boxes of the connected regions of each boolean mask [N, H, W].

    Returns:
        {index: [(x0, y0, x1, y1), ...]} for every mask (an empty list where it is empty).
    """
    boxes = {}
    for i, mask in enumerate(np.asarray(masks, bool)):
        regions, _ = ndimage.label(mask)
        boxes[i] = [(s[1].start, s[0].start, s[1].stop, s[0].stop)
                    for s in ndimage.find_objects(regions)]
    return boxes


def cell_targets(boxes, grid, image_size):
    """Which cells of a grid x grid activation map have their centre inside a box.

    Args:
        boxes: [(x0, y0, x1, y1), ...] of one sample.
        grid: the activation map's side.
        image_size: the image's side.
    Returns:
        bool [grid, grid].
    """
    centres = (np.arange(grid) + 0.5) * image_size / grid
    x, y = np.meshgrid(centres, centres)
    inside = np.zeros([grid, grid], bool)
    for x0, y0, x1, y1 in boxes:
        inside |= (x >= x0) & (x < x1) & (y >= y0) & (y < y1)
    return inside


def fit_regression(activations, targets, seed=0):
    """Logistic regression of "inside a box" on the channels at each position.

    Args:
        activations: [N, h, w, c] (a G layer's output on the annotated samples).
        targets: bool [N, h, w].
    Returns:
        (the fitted sklearn LogisticRegression, its accuracy on the training positions).
    """
    x = np.asarray(activations, np.float32).reshape(-1, activations.shape[-1])
    y = np.asarray(targets, bool).reshape(-1)
    if y.all() or not y.any():
        raise ValueError(f"the boxes cover {'all' if y.all() else 'none'} of the "
                         f"{len(y)} activation positions; both kinds are needed")
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000,
                               random_state=seed).fit(x, y)
    return model, float(model.score(x, y))


def positive_channels(model, max_maps=0):
    """Indices of the channels with a positive regression weight (the paper's drop), or
    only the `max_maps` largest of them (0: all)."""
    weights = model.coef_[0]
    order = [int(c) for c in np.argsort(-weights, kind="stable") if weights[c] > 0]
    return np.array(sorted(order[:max_maps] if max_maps else order), np.int64)


def inside_score(model, activations):
    """Mean predicted probability of "inside" over every position of [N, h, w, c]."""
    x = np.asarray(activations, np.float32).reshape(-1, activations.shape[-1])
    return float(model.predict_proba(x)[:, 1].mean())


def run(networks, out_dir, layer, z, boxes, new_z, segmenter=None, concept=None,
        concept_names=None, show=32, max_maps=0):
    """The `forget` verb: fit "inside a box" on a G layer, drop the maps with positive
    weight, and draw new samples with and without the drop.

    Writes forget.png (rows alternate: new samples as drawn, then the same z with the maps
    dropped), forget_boxes.json (the boxes used) and forget.json.

    Args:
        networks: workdir.Networks.
        out_dir: output directory.
        layer: the G layer (a feature map) to fit and edit.
        z: latent vectors of the annotated samples [N, z_dim].
        boxes: {row of z: [(x0, y0, x1, y1), ...]}; the rows listed are the training set.
        new_z: latent vectors of the new samples [M, z_dim].
        segmenter: optional images -> label maps, with `concept` the label of the object:
            reports the object's pixel share in the new samples with and without the drop.
        concept: that object's label value in the segmenter's maps.
        concept_names: names of the segmenter's label values: every concept's pixel share
            is reported too (the control: what else the drop removes).
        show: new samples shown in forget.png (all are measured).
        max_maps: drop only the maps with the largest weights (0: every positive one).
    Returns:
        The JSON dict.
    """
    split = nethook.SplitGenerator(networks.generator, layer)
    size = networks.generator.image_size
    rows = sorted(boxes)
    acts = split.activations(z[rows])  # [n, h, w, c]
    targets = np.stack([cell_targets(boxes[r], acts.shape[1], size) for r in rows])
    model, accuracy = fit_regression(acts, targets)
    edit = nethook.ChannelEdit(positive_channels(model, max_maps))
    new_acts = split.activations(new_z)
    kept, dropped = split.images_from(new_acts), split.images_from(new_acts, edit)
    per_row = min(8, len(new_z))
    pairs = [part for i in range(0, min(show, len(new_z)), per_row)
             for part in (kept[i:i + per_row], dropped[i:i + per_row])]
    outputs.write_grid(out_dir, "forget.png", np.concatenate(pairs), cols=per_row)
    outputs.write_json(out_dir, "forget_boxes.json",
                       {str(r): [list(map(int, b)) for b in boxes[r]] for r in rows})
    result = {"layer": layer, "activation_shape": list(acts.shape[1:]),
              "annotated_samples": len(rows),
              "samples_with_boxes": sum(bool(boxes[r]) for r in rows),
              "inside_positions": float(targets.mean()), "regression_accuracy": accuracy,
              "maps": int(acts.shape[-1]), "maps_dropped": len(edit.channels),
              "dropped_maps": edit.channels, "new_samples": len(new_z),
              "inside_score_kept": inside_score(model, new_acts),
              "inside_score_dropped": inside_score(model, np.asarray(edit(new_acts))),
              "step": networks.step}
    if segmenter is not None:
        labels_kept, labels_dropped = segmenter(kept), segmenter(dropped)
        share_kept = float(np.mean(labels_kept == concept))
        share_dropped = float(np.mean(labels_dropped == concept))
        result.update(pixel_share_kept=share_kept, pixel_share_dropped=share_dropped,
                      pixel_share_drop=1.0 - share_dropped / max(share_kept, 1e-12))
        if concept_names:
            result["pixel_shares"] = {name: [float(np.mean(labels_kept == i)),
                                             float(np.mean(labels_dropped == i))]
                                      for i, name in enumerate(concept_names)}
    outputs.write_json(out_dir, "forget.json", result)
    return result
