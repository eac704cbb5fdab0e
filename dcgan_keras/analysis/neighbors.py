"""Nearest training images of generated samples: the memorisation check (paper, 6.1).

Exact and streaming: every training image is compared with every sample, one batch at a
time, keeping only the k best of each sample so far, so memory does not grow with the
dataset. Distances are Euclidean, in pixel space and in D's feature space.
"""
import numpy as np

from dcgan_keras.analysis import outputs
from dcgan_keras.models import features as features_lib


class StreamingNeighbors:
    """The k nearest rows seen so far for each query, over a stream of batches.

    Each batch is first cut to its own k best per query, then merged with the best so
    far, so memory is O(Q k) whatever the batch size and the stream's length.

    Args:
        queries: [Q, ...] (flattened to [Q, F]).
        k: neighbours kept per query.
    """

    def __init__(self, queries, k):
        self.queries = np.asarray(queries, np.float64).reshape(len(queries), -1)
        self.k = k
        self.query_norms = np.sum(self.queries ** 2, axis=1)
        self.distances = np.zeros([len(self.queries), 0])
        self.indices = np.zeros([len(self.queries), 0], np.int64)
        self.payload = None
        self.seen = 0

    def update(self, rows, payload=None):
        """Adds a batch of rows [B, ...]; their indices continue from the previous batch.

        Args:
            rows: [B, ...], compared after flattening.
            payload: optional [B, ...] kept along with the best rows (e.g. the images).
        """
        rows = np.asarray(rows, np.float64).reshape(len(rows), -1)
        # ||q - r||^2 = ||q||^2 - 2 q.r + ||r||^2, in float64 so an exact copy reads ~0.
        d2 = self.query_norms[:, None] - 2 * self.queries @ rows.T + np.sum(rows ** 2, 1)[None]
        take = min(self.k, len(rows))
        best = np.argpartition(d2, take - 1, axis=1)[:, :take]  # [Q, take] batch rows
        distances = np.concatenate(
            [self.distances, np.sqrt(np.maximum(np.take_along_axis(d2, best, 1), 0))], 1)
        indices = np.concatenate([self.indices, best + self.seen], axis=1)
        order = np.argsort(distances, axis=1, kind="stable")[:, :self.k]
        self.distances = np.take_along_axis(distances, order, axis=1)
        self.indices = np.take_along_axis(indices, order, axis=1)
        if payload is not None:
            candidates = np.asarray(payload)[best]  # [Q, take, ...]
            if self.payload is not None:
                candidates = np.concatenate([self.payload, candidates], axis=1)
            self.payload = np.stack([c[o] for c, o in zip(candidates, order)])
        self.seen += len(rows)

    def result(self):
        """(indices [Q, k], distances [Q, k]), nearest first."""
        return self.indices, self.distances


def nearest(samples, batches, k, feature_fn=None):
    """The k nearest training images of each sample, in pixels and in features.

    Args:
        samples: generated images [Q, S, S, C] in [-1, 1].
        batches: an iterable of training image batches [B, S, S, C] in [-1, 1] (every
            training image, once).
        k: neighbours per sample.
        feature_fn: optional images -> features [N, F] (D's), for the second space.
    Returns:
        {space: {"indices": [Q, k], "distances": [Q, k], "images": [Q, k, S, S, C]}} for
        space in "pixels" (and "features"), nearest first.
    """
    samples = np.asarray(samples, np.float32)
    spaces = {"pixels": (None, StreamingNeighbors(samples, k))}
    if feature_fn is not None:
        spaces["features"] = (feature_fn, StreamingNeighbors(feature_fn(samples), k))
    for batch in batches:
        batch = np.asarray(batch, np.float32)
        for fn, search in spaces.values():
            search.update(batch if fn is None else fn(batch), payload=batch)
    return {name: {"indices": search.indices, "distances": search.distances,
                   "images": search.payload, "searched": search.seen}
            for name, (_, search) in spaces.items()}


def run(networks, out_dir, samples, batches, k=5, reference=None):
    """The `neighbors` verb: each sample and its k nearest training images, in pixel space
    (neighbors_pixels.png) and in D's probe features (neighbors_features.png), one sample
    per row; distances in neighbors.json.

    Args:
        networks: workdir.Networks.
        out_dir: output directory.
        samples: generated images [Q, S, S, C] in [-1, 1].
        batches: every training image, once, in batches.
        k: neighbours per sample.
        reference: optional held-out real images [R, S, S, C], searched in the same pass:
            their nearest-neighbour distances are the scale of "not a copy".
    Returns:
        The JSON dict.
    """
    samples = np.asarray(samples, np.float32)
    queries = samples if reference is None else np.concatenate([samples, reference])
    found = nearest(queries, batches, k, features_lib.keras_feature_fn(networks.discriminator))
    q = len(samples)
    result = {"k": k, "num_samples": q, "step": networks.step,
              "num_train_images": found["pixels"]["searched"]}
    for space, res in found.items():
        rows = np.concatenate([samples[:, None], res["images"][:q]], axis=1)
        outputs.write_grid(out_dir, f"neighbors_{space}.png",
                           rows.reshape((-1,) + samples.shape[1:]), cols=k + 1)
        first = res["distances"][:, 0]
        result[space] = {"indices": res["indices"][:q].tolist(),
                         "distances": res["distances"][:q].round(4).tolist(),
                         "samples_nearest_min": float(first[:q].min()),
                         "samples_nearest_median": float(np.median(first[:q]))}
        if reference is not None:
            result[space]["reference_nearest_min"] = float(first[q:].min())
            result[space]["reference_nearest_median"] = float(np.median(first[q:]))
    outputs.write_json(out_dir, "neighbors.json", result)
    return result
