"""Vector arithmetic on z (Radford et al. 2016, section 6.3.2, figures 7-8).

"Experiments working on only single samples per concept were unstable, but averaging the
Z vector for three exemplars showed consistent and stable generations": each concept is
the mean z of a group of exemplars, the expression A - B + C is taken on those means, and
its neighbourhood is shown by adding uniform noise of +-0.25 to it (the paper's 3x3
grids). An attribute vector (the difference of two concept means, like the paper's
"turn" vector) is added to a concept at several scales.
"""
import numpy as np

from dcgan_keras.analysis import outputs

NOISE_SCALE = 0.25  # the paper's +-0.25 uniform noise on z


def parse_groups(text):
    """"0,1,2;3,4,5;6,7,8" -> [[0, 1, 2], [3, 4, 5], [6, 7, 8]] (ValueError if malformed)."""
    groups = []
    for part in text.split(";"):
        try:
            groups.append([int(i) for i in part.split(",") if i.strip()])
        except ValueError:
            raise ValueError(f"groups must be ';'-separated lists of ','-separated sample "
                             f"indices, e.g. 0,1,2;3,4,5;6,7,8, got {text!r}") from None
        if not groups[-1]:
            raise ValueError(f"empty group in {text!r}")
    return groups


def concept_vectors(z, groups):
    """Each group's mean z: [len(groups), dim].

    Args:
        z: the latent vectors of a sample sheet [N, dim].
        groups: lists of row indices into z.
    """
    z = np.asarray(z, np.float32)
    for group in groups:
        bad = [i for i in group if not 0 <= i < len(z)]
        if bad:
            raise IndexError(f"sample indices {bad} out of range: the sheet has {len(z)} "
                             f"samples (0..{len(z) - 1})")
    return np.stack([z[group].mean(axis=0) for group in groups])


def expression(a, b, c):
    """A - B + C."""
    return np.asarray(a) - np.asarray(b) + np.asarray(c)


def neighbourhood(z, num=9, scale=NOISE_SCALE, seed=0):
    """z and num-1 variants with uniform noise in [-scale, scale]: [num, dim] (first is z)."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(-scale, scale, size=(num - 1, len(z)))
    return np.concatenate([np.asarray(z)[None], z + noise]).astype(np.float32)


def attribute_path(base, attribute, scales):
    """base + s * attribute for each s in scales: [len(scales), dim]."""
    scales = np.asarray(scales, np.float32)[:, None]
    return (np.asarray(base)[None] + scales * np.asarray(attribute)[None]).astype(np.float32)


def run(networks, out_dir, concepts, names=("A", "B", "C"), exemplar_z=None,
        scales=(-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0), attribute=(0, 1), seed=0,
        classify=None):
    """The `arithmetic` verb: A - B + C, its 3x3 neighbourhood and an attribute path.

    Args:
        networks: workdir.Networks.
        out_dir: where arithmetic.png, neighbourhood.png, attribute.png and
            arithmetic.json go.
        concepts: the concept vectors [3, dim] (A, B, C: group means).
        names: labels of A, B, C for the JSON.
        exemplar_z: optional list of each concept's exemplar z's [n_i, dim], shown in the
            grid before the concept's mean.
        scales: scales s of the attribute path C + s (concept[i] - concept[j]).
        attribute: (i, j) of the attribute vector (default A - B).
        seed: seed of the neighbourhood noise.
        classify: optional images -> class probabilities [N, K], reported per image.
    Returns:
        The JSON dict.
    """
    generate = outputs.generator_fn(networks.generator)
    concepts = np.asarray(concepts, np.float32)
    result_z = expression(*concepts[:3])
    rows = []
    width = max([len(e) for e in exemplar_z] if exemplar_z else [0]) + 1
    for i, mean in enumerate(concepts[:3]):
        shown = list(exemplar_z[i]) if exemplar_z else []
        shown += [np.zeros_like(mean)] * (width - 1 - len(shown)) + [mean]
        rows.append(np.stack(shown))
    rows.append(np.stack([np.zeros_like(result_z)] * (width - 1) + [result_z]))
    grid_z = np.concatenate(rows)
    images = generate(grid_z)
    images[np.all(grid_z == 0, axis=1)] = 1.0  # blank (white) padding cells
    outputs.write_grid(out_dir, "arithmetic.png", images, cols=width)
    near = neighbourhood(result_z, seed=seed)
    near_images = generate(near)
    outputs.write_grid(out_dir, "neighbourhood.png", near_images, cols=3)
    i, j = attribute
    path = attribute_path(concepts[2], concepts[i] - concepts[j], scales)
    path_images = generate(path)
    outputs.write_grid(out_dir, "attribute.png", path_images, cols=len(scales))
    result = {"expression": f"{names[0]} - {names[1]} + {names[2]}", "concepts": list(names),
              "attribute": f"{names[2]} + s * ({names[i]} - {names[j]})",
              "scales": [float(s) for s in scales], "step": networks.step,
              "result_z_norm": float(np.linalg.norm(result_z))}
    if classify is not None:
        result["concept_classes"] = np.argmax(classify(generate(concepts[:3])), 1).tolist()
        result["result_probabilities"] = classify(near_images[:1])[0].round(4).tolist()
        result["neighbourhood_classes"] = np.argmax(classify(near_images), 1).tolist()
        result["attribute_classes"] = np.argmax(classify(path_images), 1).tolist()
    outputs.write_json(out_dir, "arithmetic.json", result)
    return result
