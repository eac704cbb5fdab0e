"""Walking in the latent space (Radford et al. 2016, section 6.1).

"If walking in this latent space results in semantic changes to the image generations
[...] we can reason that the model has learned relevant and interesting representations.
[...] sharp transitions" would be a sign of memorisation. A walk is a path of z between
two endpoints, linear or spherical (White 2016, "Sampling generative networks": a
Gaussian z has most mass near a sphere, and slerp stays near it), and its sharpness is
the largest step's change in D-feature space over the mean step: 1 for an even walk, up to
the number of steps when one step does all the change.

The endpoints come from G's own prior (models/latent.py). On the paper's uniform prior,
U(-1, 1)^d, the two modes part ways: a linear walk stays inside the cube, the prior's
support, but its middle is shorter than a typical draw (by up to 1/sqrt(2) halfway between
two independent ends, as on a Gaussian); a spherical walk keeps the norm but leaves the
cube, its middle coordinates reaching up to sqrt(2) for orthogonal ends. walk.json
reports, per mode, the fraction of walk coordinates outside the prior's support.
"""
import numpy as np

from dcgan_keras.analysis import outputs
from dcgan_keras.models import features as features_lib, latent

MODES = ("linear", "spherical")


def lerp(z0, z1, t):
    """Linear interpolation: z0 + t (z1 - z0) for each t in `t` -> [len(t), ...]."""
    z0, z1 = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
    t = np.asarray(t, np.float64).reshape([-1] + [1] * z0.ndim)
    return (z0 + t * (z1 - z0)).astype(np.float32)


def slerp(z0, z1, t):
    """Spherical interpolation along the great circle from z0 to z1, norms interpolated
    linearly (so equal-norm endpoints keep their norm) -> [len(t), dim]."""
    z0, z1 = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
    n0, n1 = np.linalg.norm(z0), np.linalg.norm(z1)
    u0, u1 = z0 / n0, z1 / n1
    omega = np.arccos(np.clip(np.dot(u0, u1), -1.0, 1.0))
    t = np.asarray(t, np.float64)[:, None]
    if omega < 1e-6:  # (anti)parallel endpoints: the direction does not change
        direction = np.broadcast_to(u0, (len(t), len(u0)))
    else:
        direction = (np.sin((1 - t) * omega) * u0 + np.sin(t * omega) * u1) / np.sin(omega)
    return (direction * ((1 - t) * n0 + t * n1)).astype(np.float32)


def walk(z0, z1, steps, mode="linear"):
    """`steps` points from z0 to z1 inclusive [steps, dim], by `mode` (one of MODES)."""
    if steps < 2:
        raise ValueError(f"a walk needs at least 2 steps, got {steps}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    t = np.linspace(0.0, 1.0, steps)
    return lerp(z0, z1, t) if mode == "linear" else slerp(z0, z1, t)


def sharpness(features):
    """Largest step over mean step of a path in feature space [steps, F].

    Returns:
        float in [1, steps - 1]: 1 when every step changes the features equally.
    """
    features = np.asarray(features, np.float64).reshape(len(features), -1)
    step = np.linalg.norm(np.diff(features, axis=0), axis=1)
    return float(step.max() / max(step.mean(), 1e-12))


def random_walks(num_walks, steps, z_dim, seed=0, mode="linear",
                 distribution=latent.PAPER):
    """`num_walks` walks between endpoint pairs drawn from the prior `distribution`:
    [num_walks, steps, z_dim]."""
    rng = np.random.default_rng(seed)
    ends = latent.numpy(rng, [num_walks, 2, z_dim], distribution)
    return np.stack([walk(a, b, steps, mode) for a, b in ends])


def walk_sharpness(generator_fn, feature_fn, walks):
    """Sharpness of each walk of z [W, steps, dim]: images by generator_fn, then features.

    Args:
        generator_fn: z [N, dim] -> images [N, S, S, C].
        feature_fn: images -> features [N, F] (D's).
        walks: [W, steps, dim].
    Returns:
        (images [W, steps, S, S, C], sharpness [W]).
    """
    w, steps, dim = walks.shape
    images = np.asarray(generator_fn(walks.reshape(-1, dim)))
    features = np.asarray(feature_fn(images)).reshape(w, steps, -1)
    return (images.reshape((w, steps) + images.shape[1:]),
            np.array([sharpness(f) for f in features]))


def run(networks, out_dir, num_walks=8, steps=10, modes=MODES, seed=0,
        compare_untrained=True, ends=None):
    """The `walk` verb: grids of walks per mode and their sharpness, trained vs untrained G.

    `ends` [W, 2, z_dim] (e.g. pairs of inverted images' z) replaces the random endpoint
    pairs: then W walks, whatever num_walks says.

    Sharpness is measured in the trained D's probe features (every conv block, max-pooled
    to 4x4) for both generators. Writes walk_<mode>.png (one walk per row) and walk.json.

    Returns:
        The JSON dict.
    """
    generator = networks.generator
    feature_fn = features_lib.keras_feature_fn(networks.discriminator)
    generators = {"trained": generator}
    if compare_untrained:
        generators["untrained"] = outputs.untrained_copy(generator, seed)
    num_walks = num_walks if ends is None else len(ends)
    result = {"num_walks": num_walks, "steps": steps, "seed": seed, "step": networks.step,
              "endpoints": "random" if ends is None else "given",
              "z_distribution": latent.of(generator),
              "feature_space": "D probe features (all conv blocks, 4x4 max-pooled)"}
    for mode in modes:
        walks = (random_walks(num_walks, steps, generator.z_dim, seed, mode,
                              latent.of(generator)) if ends is None else
                 np.stack([walk(a, b, steps, mode) for a, b in np.asarray(ends)]))
        result[mode] = {}
        if latent.of(generator) == latent.UNIFORM:
            result[f"{mode}_outside_prior_support"] = float(np.mean(np.abs(walks) > 1))
        for name, g in generators.items():
            images, sharp = walk_sharpness(outputs.generator_fn(g), feature_fn, walks)
            suffix = "" if name == "trained" else f"_{name}"
            outputs.write_grid(out_dir, f"walk_{mode}{suffix}.png",
                               images.reshape((-1,) + images.shape[2:]), cols=steps)
            result[mode][name] = {"sharpness": sharp.round(4).tolist(),
                                  "mean_sharpness": float(sharp.mean()),
                                  "max_sharpness": float(sharp.max())}
    outputs.write_json(out_dir, "walk.json", result)
    return result
