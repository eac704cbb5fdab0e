"""GAN Dissection's threshold for generators: per unit and concept, the level that
maximises the information quality ratio (Bau et al. 2018, arXiv:1811.10597, section 3.1;
the reference code's `collect_iqr`, CSAILVision/gandissect netdissect/dissection.py).

For a unit u (its activation map upsampled to the segmentation's size) and a concept c,
each candidate level t gives a 2x2 table over all pixels of all samples: the fractions
of pixels with (a_u > t, s = c), (a_u > t, s != c), (a_u <= t, s = c), (a_u <= t, s != c).
From it

    IQR(u, c, t) = I(unit; concept) / H(unit, concept)   (mutual information over joint
                                                          entropy, in [0, 1])

The candidate levels are each unit's quantiles at 1 - f for 100 top fractions f
log-spaced from 0.001 to 1 (the reference's `1 - logspace(-3, 0, 100)`). As in the
reference, a level is not chosen where fewer than 80% of the pixels agree (true positives
plus true negatives <= 0.8: the unit is not positively related to the concept there), or
where the level is <= 0 (a ReLU unit "on" where it is not active), and the mutual
information is taken as 0 at f = 1 and for concepts on fewer than 0.1% of the pixels
(too few to trust). The chosen threshold of (u, c) is the level of the largest remaining
IQR; its IoU is that level's. The paper counts u as interpretable for c when IoU > 0.05
and IQR > 0.01; we also leave out levels above which the unit is on over more than half
of the pixels (the reference's report does the same with its `qualified` filter).

The levels are quantiles of a seeded random sample of the upsampled values (at most
`max_values` per unit, spread over every batch), as the reference's are of a running
quantile sketch; the counts at those levels are exact.
"""
import numpy as np

FRACTIONS = np.logspace(-3, 0, 100)  # top fractions; level l is the (1 - f_l) quantile
MIN_AGREEMENT = 0.8
MIN_CONCEPT_SHARE = 1e-3
MAX_QUALIFIED_FRACTION = 0.5
IOU_CUTOFF, IQR_CUTOFF = 0.05, 0.01  # the paper's criterion


class LevelSample:
    """A seeded sample of each unit's values, from which the candidate levels come.

    Args:
        total: values per unit that will be seen (N * S * S).
        channels: units.
        max_values: at most this many values per unit are kept.
        seed: seed of the sample.
    """

    def __init__(self, total, channels, max_values=200_000, seed=0):
        self.total, self.keep = int(total), min(int(total), int(max_values))
        self.rng = np.random.default_rng(seed)
        self.parts, self.seen, self.kept = [], 0, 0
        self.channels = channels

    def update(self, values):
        """Adds values [P, channels] (every unit's value at P pixels)."""
        values = np.asarray(values, np.float32)
        # Keep the share of this batch that keeps the running sample at keep/total.
        self.seen += len(values)
        target = int(round(self.keep * self.seen / self.total)) - self.kept
        if target > 0:
            rows = self.rng.choice(len(values), min(target, len(values)), replace=False)
            self.parts.append(values[np.sort(rows)])
            self.kept += len(rows)

    def levels(self, fractions=FRACTIONS):
        """Levels [channels, L]: each unit's (1 - f) quantile of the sample, for f in
        `fractions`."""
        if self.seen != self.total:
            raise ValueError(f"saw {self.seen} values per unit, expected {self.total}")
        sample = np.concatenate(self.parts).astype(np.float64)
        return np.quantile(sample, 1.0 - np.asarray(fractions), axis=0).T.astype(np.float32)


class LevelCounts:
    """Exact pixel counts of each unit above each of its levels, by concept.

    Args:
        levels: [c, L] each unit's candidate levels.
        num_concepts: K.
    """

    def __init__(self, levels, num_concepts):
        self.levels = np.asarray(levels, np.float32)
        self.order = np.argsort(self.levels, axis=1, kind="stable")  # ascending
        self.ascending = np.take_along_axis(self.levels, self.order, axis=1)
        c, n = self.levels.shape
        self.num_concepts = num_concepts
        # hist[u, b, k]: pixels of concept k where exactly b of u's levels are below a_u.
        self.hist = np.zeros([c, n + 1, num_concepts], np.int64)

    def update(self, values, labels):
        """values [P, c] (upsampled activations), labels [P] (concept indices)."""
        values = np.asarray(values, np.float32)
        labels = np.asarray(labels, np.int64).reshape(-1)
        k = self.num_concepts
        bins = self.hist.shape[1]
        for u in range(self.levels.shape[0]):
            b = np.searchsorted(self.ascending[u], values[:, u], side="left")
            self.hist[u] += np.bincount(b * k + labels, minlength=bins * k).reshape(bins, k)

    def tables(self):
        """(active [c, L, K], concept [K], total): pixels of concept k where a_u is above
        level l (in the order of `levels`), each concept's pixels, and all pixels."""
        # a > ascending[j] exactly when more than j levels are below a.
        above = np.cumsum(self.hist[:, ::-1], axis=1)[:, ::-1][:, 1:]  # [c, L, K]
        # Back from ascending order to the order of `levels`.
        active = np.empty_like(above)
        np.put_along_axis(active, self.order[..., None], above, axis=1)
        concept = self.hist[0].sum(0)
        return active, concept, int(concept.sum())


def _xlogy(x, y):
    return np.where(x > 0, x * np.log(np.where(x > 0, y, 1.0)), 0.0)


def information(tp, fp, fn, tn):
    """(mutual information, joint entropy) in nats of 2x2 tables of pixel fractions."""
    cells = (tp, fp, fn, tn)
    unit_on, unit_off = tp + fp, fn + tn
    concept_in, concept_out = tp + fn, fp + tn
    marginals = ((unit_on, concept_in), (unit_on, concept_out), (unit_off, concept_in),
                 (unit_off, concept_out))
    mi = sum(_xlogy(p, p / np.maximum(a * b, 1e-300)) for p, (a, b) in zip(cells, marginals))
    je = -sum(_xlogy(p, p) for p in cells)
    return np.maximum(mi, 0.0), np.maximum(je, 0.0)


def choose(levels, active, concept, total, fractions=FRACTIONS):
    """The IQR-maximising level of every (unit, concept).

    Args:
        levels: [c, L] the candidate levels; fractions [L] their top fractions.
        active, concept, total: LevelCounts.tables().
    Returns:
        {"level", "fraction", "iqr", "iou", "agreement", "interpretable"}: each [c, K];
        "iqr_all" [c, L, K] (every level's IQR, before the exclusions).
    """
    levels = np.asarray(levels, np.float64)
    total = float(total)
    unit = active.sum(axis=2, keepdims=True) / total  # [c, L, 1] share of pixels on
    truth = (concept / total)[None, None, :]
    tp = active / total
    fp, fn = unit - tp, truth - tp
    tn = np.clip(1.0 - tp - fp - fn, 0.0, 1.0)
    mi, je = information(tp, np.clip(fp, 0, 1), np.clip(fn, 0, 1), tn)
    mi[:, np.asarray(fractions) >= 1.0, :] = 0.0  # everything "on": no information
    mi[:, :, truth[0, 0] < MIN_CONCEPT_SHARE] = 0.0
    iqr = np.where(je > 0, mi / np.where(je > 0, je, 1.0), 0.0)
    agreement = tp + tn
    usable = (agreement > MIN_AGREEMENT) & (levels > 0)[..., None]
    best = np.argmax(np.where(usable, iqr, -1.0), axis=1)  # [c, K]; -1: none usable
    pick = lambda a: np.take_along_axis(np.broadcast_to(a, iqr.shape), best[:, None], 1)[:, 0]
    chosen_iqr = np.where(pick(usable), pick(iqr), 0.0)
    union = truth + unit - tp
    iou = np.where(union > 0, tp / np.where(union > 0, union, 1.0), 0.0)
    chosen_iou = np.where(pick(usable), pick(iou), 0.0)
    fraction = np.asarray(fractions)[best]
    return {"level": np.take_along_axis(levels, best, axis=1).astype(np.float32),
            "fraction": fraction, "iqr": chosen_iqr, "iou": chosen_iou,
            "agreement": pick(agreement),
            "interpretable": interpretable(chosen_iou, chosen_iqr, fraction),
            "iqr_all": iqr}


def interpretable(iou, iqr, fraction):
    """The paper's criterion (IoU > 0.05 and IQR > 0.01), at a level where the unit is on
    over at most half of the pixels."""
    return (iou > IOU_CUTOFF) & (iqr > IQR_CUTOFF) & (fraction <= MAX_QUALIFIED_FRACTION)
