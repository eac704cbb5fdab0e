"""Unit sets optimised for the average causal effect (Bau et al. 2018, section 3.2; the
reference code's `netdissect/aceoptimize.py`).

A continuous alpha in [0, 1]^d over the layer's d units scales an intervention:

    ablation   r' = (1 - alpha) * r                    (every position of the map)
    insertion  r' = (1 - alpha m) * r + alpha m k       (m: one layer cell where the
                                                         concept is absent; k: the units'
                                                         concept-conditional means)

and is trained to make the concept disappear under ablation and appear under insertion:

    loss = E_present[ p_c(G(ablated)) ]  -  E_absent[ p_c(G(inserted)) at the cell ]
           + lambda * ||alpha||^2

where p_c is the segmenter's probability of the concept (so the segmenter must be
differentiable: `Segmenter.probabilities`, which the learned segmenter of
binaries/train_segmenter.py has), averaged over the whole image for the ablation and over
the 3x3 cells around the insertion's cell. The settings are the reference's: Adam with
learning rate 0.01, lambda = 0.005 per sample, alpha clipped to [0, 1] after every step,
alpha initialised to the units' IoU with the concept over the largest IoU. Two choices
differ, on purpose: the ablation is over the whole map (the reference's `_fia` variant;
its default ablates one cell) because that is the ablation we report, and the insertion's
cells are random cells where the concept is absent (the reference first searches for the
cells where inserting works best, which would favour the IoU ranking that search uses).
The set of k units is then alpha's top k.
"""
import keras
import numpy as np
import tensorflow as tf

from dcgan_keras.analysis.dissect import intervention

LEARNING_RATE = 0.01
L2 = 0.005


def _corpus(split, segmenter, z, concept, rng, batch_size=100):
    """Activations of the samples that show the concept, and (activation, cell) pairs of
    cells where it is absent (one random cell per sample that has one)."""
    grid = split.activation_shape[0]
    present, absent, cells = [], [], []
    for i in range(0, len(z), batch_size):
        acts = split.activations(z[i:i + batch_size])
        labels = segmenter(split.images_from(acts))
        presence = intervention.cell_presence(labels, concept, grid)
        for b in range(len(acts)):
            if presence[b].any():
                present.append(acts[b])
            empty = np.argwhere(presence[b] == 0)
            if len(empty):
                r, c = empty[rng.integers(len(empty))]
                absent.append(acts[b])
                cells.append((int(r), int(c)))
    return (np.stack(present) if present else None, np.stack(absent) if absent else None,
            cells)


def optimise(split, segmenter, z, concept, init, values, epochs=5, batch_size=16, seed=0,
             progress=None):
    """Optimises alpha for `concept` at the split layer.

    Args:
        split: nethook.SplitGenerator.
        segmenter: a segmenters.Segmenter with `probabilities` (differentiable).
        z: [N, z_dim] the training samples.
        concept: the concept's label.
        init: [d] initial alpha (e.g. the units' IoU with the concept); scaled to max 1.
        values: [d] the units' concept-conditional mean activations (what insertion writes).
        epochs, batch_size: passes over the samples, samples per step (of each kind).
        seed: seed of the cells and of the order.
        progress: optional callable(str).
    Returns:
        {"alpha": [d], "loss": [per epoch], "present": n, "absent": n}.
    """
    if getattr(segmenter, "probabilities", None) is None:
        raise ValueError(f"ACE-optimised unit sets need a differentiable segmenter (one with "
                         f"class probabilities); {segmenter.name!r} has none. Train one with "
                         "python -m dcgan_keras.binaries.train_segmenter, or use --unit_set=iou")
    rng = np.random.default_rng(seed)
    present, absent, cells = _corpus(split, segmenter, z, concept, rng)
    if present is None or absent is None:
        raise ValueError(f"no sample shows concept {segmenter.concepts[concept]!r}, or every "
                         "sample shows it everywhere: nothing to optimise alpha on")
    grid, _, d = split.activation_shape
    side = split.tail.output.shape[1] // grid
    insert_mask = np.zeros([len(cells), grid, grid, 1], np.float32)
    around = np.zeros([len(cells), grid * side, grid * side], np.float32)
    for n, (r, c) in enumerate(cells):
        insert_mask[n, r, c] = 1.0
        around[n] = np.repeat(np.repeat(intervention.neighbourhood(grid, r, c), side, 0),
                              side, 1)
    init = np.clip(np.asarray(init, np.float32), 0, None)
    alpha = tf.Variable(init / max(float(init.max()), 1e-12))
    value = tf.constant(np.asarray(values, np.float32))
    optimizer = keras.optimizers.Adam(LEARNING_RATE)

    def probability(images):
        return segmenter.probabilities(images)[..., concept]

    @tf.function(reduce_retracing=True)
    def step(p_acts, a_acts, a_mask, a_around):
        with tf.GradientTape() as tape:
            erase = tf.reduce_mean(probability(split.tail(p_acts * (1.0 - alpha),
                                                          training=False)))
            m = a_mask * alpha
            inserted = split.tail((1.0 - m) * a_acts + m * value, training=False)
            p = probability(inserted)
            add = tf.reduce_mean(tf.reduce_sum(p * a_around, [1, 2])
                                 / tf.reduce_sum(a_around, [1, 2]))
            loss = erase - add + L2 * tf.reduce_sum(tf.square(alpha))
        optimizer.apply_gradients([(tape.gradient(loss, alpha), alpha)])
        alpha.assign(tf.clip_by_value(alpha, 0.0, 1.0))
        return loss

    steps = max(1, min(len(present), len(absent)) // batch_size)
    history = []
    for epoch in range(epochs):
        p_order, a_order = rng.permutation(len(present)), rng.permutation(len(absent))
        losses = []
        for s in range(steps):
            p = p_order[s * batch_size:(s + 1) * batch_size]
            a = a_order[s * batch_size:(s + 1) * batch_size]
            losses.append(float(step(tf.constant(present[p]), tf.constant(absent[a]),
                                     tf.constant(insert_mask[a]), tf.constant(around[a]))))
        history.append(float(np.mean(losses)))
        if progress:
            progress(f"ACE alpha for {segmenter.concepts[concept]}: epoch {epoch + 1}/{epochs}"
                     f", loss {history[-1]:.4f}, {int((alpha.numpy() > 0.5).sum())} units "
                     "above 0.5")
    return {"alpha": alpha.numpy(), "loss": history, "present": len(present),
            "absent": len(absent)}


def top_units(alpha, k):
    """The k units of largest alpha (ties: lower index first)."""
    return [int(u) for u in np.argsort(-np.asarray(alpha), kind="stable")[:k]]
