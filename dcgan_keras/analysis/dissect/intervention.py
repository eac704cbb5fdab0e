"""Interventions of GAN Dissection (Bau et al. 2018, arXiv:1811.10597, section 3.2): what
happens to a concept when a set of units is removed or inserted.

- Ablation: the units are set to 0 at every position. Its average causal effect (ACE) is
  the mean over samples of the change in the concept's pixel share, with and without the
  edit on the same z, taken over the samples that show the concept (as the paper's
  "images containing the class"), with a 95% normal confidence interval. Two controls:
  every other concept's share, and the colour histogram (`hue_histogram`): removing
  "circle" must not remove "red".
- Insertion: the concept-conditional mean activation of the units (their mean over the
  layer cells weighted by how much of each cell the concept covers; the reference's
  `weighted_mean_present_feature`) is written at ONE feature-map location where the
  concept is absent. It takes when the concept's pixels around that location (the 3x3
  cells centred on it) grow by at least half a cell. Counted by location, this shows
  where an object can appear (the paper's door on a wall, not in the sky).

The edits go between nethook.SplitGenerator's halves.
"""
import numpy as np
import tensorflow as tf

from dcgan_keras.analysis import nethook

Z_95 = 1.959964  # two-sided 95% normal quantile
HUE_BINS = 6  # colour control: six 60-degree hue bins of saturated pixels, and "grey"
SATURATED = 0.45  # the shapes colour rule's thresholds (data/shapes.py)
BRIGHT = 0.3


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
    (every edit of the paint page).

    Why half covered (and not "the cell's centre is in the region"): a region may be any
    painted mask, and a cell of an even number of pixels has no centre pixel; the share
    of the cell's pixels that the region covers is defined for any mask and any cell
    size, and treats a cell the same whichever of its pixels are covered.

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


def cell_presence(labels, concept, grid):
    """[N, grid, grid]: the share of each layer cell's pixels that show `concept`."""
    labels = np.asarray(labels)
    n, size = labels.shape[:2]
    side = size // grid
    return (labels == concept).reshape(n, grid, side, grid, side).mean(axis=(2, 4))


def ablation(units):
    """The edit that sets `units` to 0 at every position."""
    return nethook.ChannelEdit(units, 0.0)


def insertion(units, values, cells):
    """The edit that sets each unit to values[unit] inside `cells` ([h, w] or [B, h, w]
    weights)."""
    units = sorted(int(u) for u in units)  # ChannelEdit orders values by channel
    return nethook.ChannelEdit(units, [float(values[u]) for u in units], where=cells)


class ReusableEdit:
    """One edit object whose content changes: x' = (1 - m) * x + m * v with m [h, w, c]
    (or [B, h, w, c]: one mask per sample, for a batch of `batch` samples) and v [c] held
    in variables, so every intervention runs through one traced function of
    SplitGenerator (a new edit object per intervention would trace a new one each time).

    Args:
        activation_shape: [h, w, c] of the layer.
        batch: None (one mask for every sample) or the batch size of per-sample masks.
    """

    def __init__(self, activation_shape, batch=None):
        shape = list(activation_shape) if batch is None else [batch, *activation_shape]
        self.mask = tf.Variable(tf.zeros(shape), trainable=False)
        self.value = tf.Variable(tf.zeros(activation_shape[-1:]), trainable=False)

    def load(self, edit):
        """Makes this edit do what nethook.ChannelEdit `edit` does; returns self."""
        c = self.mask.shape[-1]
        onehot = np.zeros([c], np.float32)
        onehot[edit.channels] = 1.0
        value = np.zeros([c], np.float32)
        value[edit.channels] = edit.value
        where = (np.ones(self.mask.shape[:-1], np.float32) if edit.where is None
                 else np.broadcast_to(np.asarray(edit.where, np.float32), self.mask.shape[:-1]))
        self.mask.assign(where[..., None] * onehot)
        self.value.assign(value)
        return self

    def __call__(self, x):
        return (1.0 - self.mask) * x + self.mask * self.value


def hue_histogram(images):
    """Colour shares [HUE_BINS + 1] of images [N, S, S, 3] in [-1, 1]: the saturated
    pixels in each 60-degree hue bin (red first), then the grey ones."""
    rgb = (np.asarray(images, np.float64) + 1.0) / 2.0
    high, low = rgb.max(-1), rgb.min(-1)
    saturation = np.where(high > 0, (high - low) / np.maximum(high, 1e-8), 0.0)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    hue = np.degrees(np.arctan2(np.sqrt(3.0) * (g - b), 2 * r - g - b))
    bins = (((hue + 30.0) % 360.0) // (360.0 / HUE_BINS)).astype(int)  # red: -30..30
    coloured = (saturation >= SATURATED) & (high >= BRIGHT)
    bins = np.where(coloured, bins, HUE_BINS)
    return np.bincount(bins.reshape(-1), minlength=HUE_BINS + 1) / bins.size


def _ci(effect):
    return float(Z_95 * effect.std(ddof=1) / np.sqrt(len(effect))) if len(effect) > 1 else 0.0


def containing(split, segmenter, z, concept, batch_size=100):
    """The z (of [N, z_dim]) whose images show `concept`."""
    keep = [np.any(segmenter(split.generate(z[i:i + batch_size])) == concept, axis=(1, 2))
            for i in range(0, len(z), batch_size)]
    return z[np.concatenate(keep)] if keep else z[:0]


def causal_effect(split, segmenter, z, edit, concept, batch_size=100):
    """Average causal effect of `edit` on the share of `concept`'s pixels over z.

    Returns:
        A dict: samples, ace, ci95 (half-width), share_before, share_after, removed (the
        fraction of the concept's pixels that the edit removes: 1 - after / before),
        all_shares ({concept: [share before, share after]}: what else changes), colours
        (hue_histogram before and after) and hue_removed (per hue bin, the fraction of its
        pixels removed), per-sample effects, and the first images before and after.
    """
    before, after, shown = [], [], None
    num_concepts = len(segmenter.concepts)
    counts = np.zeros([2, num_concepts])  # every concept's pixels, before and after
    colours = np.zeros([2, HUE_BINS + 1])
    for i in range(0, len(z), batch_size):
        acts = split.activations(z[i:i + batch_size])
        plain, edited = split.images_from(acts), split.images_from(acts, edit)
        if shown is None:
            shown = (plain, edited)
        for j, (images, shares) in enumerate(((plain, before), (edited, after))):
            labels = segmenter(images).reshape(len(images), -1)
            shares.append((labels == concept).mean(-1))
            counts[j] += np.bincount(labels.reshape(-1), minlength=num_concepts)
            if images.shape[-1] == 3:
                colours[j] += hue_histogram(images) * len(images)
    before = np.concatenate(before) if before else np.zeros([0])
    after = np.concatenate(after) if after else np.zeros([0])
    counts /= np.maximum(counts.sum(axis=1, keepdims=True), 1)
    colours /= max(len(z), 1)
    effect = after - before
    removed = lambda b, a: float(1.0 - a / b) if b > 0 else 0.0
    return {"samples": len(z), "ace": float(effect.mean()) if len(effect) else 0.0,
            "ci95": _ci(effect),
            "share_before": float(before.mean()) if len(before) else 0.0,
            "share_after": float(after.mean()) if len(after) else 0.0,
            "removed": removed(before.mean(), after.mean()) if len(before) else 0.0,
            "all_shares": {name: [float(counts[0, k]), float(counts[1, k])]
                           for k, name in enumerate(segmenter.concepts)},
            "colours": {"before": colours[0].tolist(), "after": colours[1].tolist()},
            "hue_removed": [removed(b, a) for b, a in zip(colours[0][:HUE_BINS],
                                                          colours[1][:HUE_BINS])],
            "effects": effect, "images": shown}


def neighbourhood(grid, row, col):
    """bool [grid, grid]: the 3x3 cells centred on (row, col), clipped at the border."""
    cells = np.zeros([grid, grid], bool)
    cells[max(row - 1, 0):row + 2, max(col - 1, 0):col + 2] = True
    return cells


def insert_at_locations(split, segmenter, z, concept, units, values, per_sample=8, seed=0,
                        batch_size=64):
    """The paper's insertion: `units` set to `values` (the concept-conditional means) at
    one layer cell where `concept` is absent, for up to `per_sample` such cells per sample.

    Returns:
        A dict: tries, takes, rate (takes / tries), gain (mean concept pixels added around
        the location, as a share of the 3x3 neighbourhood) with its ci95, per-location
        "tries_at" and "takes_at" [h, w], and images (before, after, cell masks) of the
        first tries, for grids.
    """
    grid, _, channels = split.activation_shape
    rng = np.random.default_rng(seed)
    units = sorted(int(u) for u in units)
    value = np.zeros([channels], np.float32)
    value[units] = np.asarray(values, np.float32)[units]
    onehot = np.zeros([channels], np.float32)
    onehot[units] = 1.0
    tries_at, takes_at = np.zeros([grid, grid], int), np.zeros([grid, grid], int)
    gains, shown = [], None
    for i in range(0, len(z), batch_size):
        acts = split.activations(z[i:i + batch_size])
        plain = split.images_from(acts)
        labels = segmenter(plain)
        size = labels.shape[1]
        side = size // grid
        presence = cell_presence(labels, concept, grid)
        jobs = []  # (sample, row, col)
        for b in range(len(acts)):
            empty = np.argwhere(presence[b] == 0)
            for r, c in empty[rng.permutation(len(empty))[:per_sample]]:
                jobs.append((b, int(r), int(c)))
        if not jobs:
            continue
        index = np.array([j[0] for j in jobs])
        cells = np.zeros([len(jobs), grid, grid, 1], np.float32)
        cells[np.arange(len(jobs)), [j[1] for j in jobs], [j[2] for j in jobs]] = 1.0
        mask = cells * onehot
        edited = split.images_from((1.0 - mask) * acts[index] + mask * value)
        after = segmenter(edited) == concept
        for n, (b, r, c) in enumerate(jobs):
            around = np.repeat(np.repeat(neighbourhood(grid, r, c), side, 0), side, 1)
            added = int(after[n][around].sum()) - int((labels[b] == concept)[around].sum())
            gains.append(added / around.sum())
            tries_at[r, c] += 1
            takes_at[r, c] += added >= side * side / 2
        if shown is None:
            pixel_cells = np.repeat(np.repeat(cells[..., 0], side, 1), side, 2) > 0
            shown = (plain[index], edited, pixel_cells)
    gains = np.asarray(gains)
    tries = int(tries_at.sum())
    return {"tries": tries, "takes": int(takes_at.sum()),
            "rate": float(takes_at.sum() / tries) if tries else 0.0,
            "gain": float(gains.mean()) if tries else 0.0, "ci95": _ci(gains),
            "tries_at": tries_at.tolist(), "takes_at": takes_at.tolist(), "images": shown}


def random_units(channels, k, exclude=(), seed=0):
    """k random units of `channels`, none of `exclude` (the baseline set), sorted."""
    others = [u for u in range(channels) if u not in set(exclude)]
    rng = np.random.default_rng(seed)
    return sorted(int(u) for u in rng.choice(others, min(k, len(others)), replace=False))
