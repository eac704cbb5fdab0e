"""The `analyze` binary's library: one function per verb, from its options to outputs.

Each verb loads the networks (workdir or export, `workdir.load_networks`), gathers its
inputs (sample sheets, boxes, real images), calls its experiment's `run` and returns a
short summary line. A verb's options are its dataclass in `options.py`.
"""
import os
import sys

import keras
import numpy as np

from dcgan_keras import workdir as workdir_lib
from dcgan_keras.analysis import guided_backprop, invert, neighbors, nethook, outputs
from dcgan_keras.analysis import options as options_lib
from dcgan_keras.analysis.dissect import dissection, forget, segmenters
from dcgan_keras.analysis.dissect.paint import edits, launch, server
from dcgan_keras.analysis.latent import arithmetic, interpolation
from dcgan_keras.data import shapes
from dcgan_keras.evaluation import feature_nets
from dcgan_keras.exporters import sampling
from dcgan_keras.models import latent


def _latents(num, seed, generator):
    """The sample binary's z of (num, seed), from the generator's prior."""
    return sampling.latents(num, seed, generator.z_dim, latent.of(generator)).numpy()


def _sheet(path, generator):
    images, z = outputs.load_sheet(path)
    shape = (generator.image_size, generator.image_size, generator.channels)
    if z.shape[1] != generator.z_dim or images.shape[1:] != shape:
        raise ValueError(f"the sheet {path} holds {images.shape[1:]} images of {z.shape[1]}-d "
                         f"z, the generator makes {shape} images of {generator.z_dim}-d z: it "
                         "was drawn from another model")
    return images, z


def _real_images(networks, dataset, data_dir, **kwargs):
    g = networks.generator
    return outputs.real_batches(dataset or networks.dataset, g.image_size, g.channels,
                                data_dir or networks.data_dir or None, networks.preprocess,
                                **kwargs)


def run_walk(networks, o):
    ends = None
    if o.sheet:  # walks between samples 0-1, 2-3, ... of the sheet (e.g. inverted images)
        z = _sheet(o.sheet, networks.generator)[1]
        if len(z) < 2:
            raise ValueError(f"walk --sheet needs at least two samples; {o.sheet} has {len(z)}")
        ends = z[:2 * min(len(z) // 2, o.num_walks)].reshape(-1, 2, z.shape[1])
    result = interpolation.run(networks, o.out_dir, o.num_walks, o.steps, o.modes, o.seed,
                               o.compare_untrained, ends)
    return "; ".join(f"{mode} walks: mean sharpness " + ", ".join(
        f"{name} {r['mean_sharpness']:.2f}" for name, r in result[mode].items())
        for mode in o.modes) + f" (max step / mean step, {o.num_walks} walks of {o.steps})"


def _classifier(path):
    model = keras.saving.load_model(f"{path}/{feature_nets.CLASSIFIER_FILE}")
    return lambda images: np.asarray(model.predict(images, verbose=0))


def run_arithmetic(networks, o):
    z_files, sheet, groups = o.z_files, o.sheet, o.groups
    if z_files:
        if len(z_files) != 3:
            raise ValueError(f"--z_files takes three files (A, B, C), got {len(z_files)}")
        exemplars = [outputs.load_z_file(f) for f in z_files]
        names = tuple(z_files)
    elif sheet and groups:
        parsed = arithmetic.parse_groups(groups)
        if len(parsed) != 3:
            raise ValueError(f"--groups takes three groups A;B;C, got {len(parsed)}")
        z = _sheet(sheet, networks.generator)[1]
        arithmetic.concept_vectors(z, parsed)  # checks the indices
        exemplars = [z[g] for g in parsed]
        names = tuple(",".join(map(str, g)) for g in parsed)
    else:
        raise ValueError("arithmetic needs --sheet with --groups, or --z_files")
    concepts = np.stack([e.mean(axis=0) for e in exemplars])
    result = arithmetic.run(networks, o.out_dir, concepts, names, exemplars,
                            [float(s) for s in o.scales], seed=o.seed,
                            classify=_classifier(o.classifier) if o.classifier else None)
    extra = (f"; result classified as {result['neighbourhood_classes']}"
             if o.classifier else "")
    return (f"{result['expression']}: arithmetic.png, neighbourhood.png, attribute.png "
            f"({result['attribute']}){extra}")


def run_guided_backprop(networks, o):
    real = np.concatenate(list(_real_images(networks, o.dataset, o.data_dir,
                                            max_examples=o.num_images)))
    result = guided_backprop.run(networks, o.out_dir, real, o.layer, [int(u) for u in o.units],
                                 o.top_k, o.seed)
    return (f"layer {result['layer']}, units {result['units']}: top {o.top_k} of "
            f"{len(real)} real images and their guided-backprop maps, trained and random D")


def run_forget(networks, o):
    g, concept, seed = networks.generator, o.concept, o.seed
    layer = o.layer or g.conv_layer_names[-2]  # the paper's second-highest conv layer
    if o.sheet:
        images, z = _sheet(o.sheet, g)
    else:
        z = _latents(o.num_annotated, seed, g)
        images = outputs.generator_fn(g)(z)
    segmenter = label = None
    if concept:
        if concept not in shapes.KINDS:
            raise ValueError(f"--concept must be one of {', '.join(shapes.KINDS)} (the shapes "
                             f"segmenter's objects), got {concept!r}")
        if g.channels != 3:
            raise ValueError("--concept needs an RGB generator (trained on --dataset=shapes)")
        segmenter, label = shapes.segment, shapes.CONCEPTS.index(concept)
    if o.boxes:
        box_map = forget.load_boxes(o.boxes, len(z), g.image_size)
    elif segmenter is not None:
        box_map = forget.boxes_from_masks(segmenter(images) == label)
    else:
        raise ValueError("forget needs --boxes (with --sheet), or --concept on shapes")
    new_z = _latents(o.num_new, seed + 1, g)
    r = forget.run(networks, o.out_dir, layer, z, box_map, new_z, segmenter, label,
                   shapes.CONCEPTS if segmenter is not None else None, max_maps=o.max_maps)
    line = (f"layer {layer}: regression accuracy {r['regression_accuracy']:.3f} on "
            f"{r['annotated_samples']} samples; dropped {r['maps_dropped']} of {r['maps']} "
            f"maps; inside score {r['inside_score_kept']:.3f} -> {r['inside_score_dropped']:.3f}")
    if segmenter is not None:
        line += (f"; {concept} pixel share {r['pixel_share_kept']:.4f} -> "
                 f"{r['pixel_share_dropped']:.4f} ({100 * r['pixel_share_drop']:.1f}% drop); "
                 "others: " + ", ".join(f"{name} {kept:.4f} -> {dropped:.4f}" for name, (
                     kept, dropped) in r["pixel_shares"].items() if name != concept))
    return line


def run_neighbors(networks, o):
    g = networks.generator
    if o.sheet:
        images = _sheet(o.sheet, g)[0].astype(np.float32) / 127.5 - 1.0
    else:
        images = outputs.generator_fn(g)(_latents(o.num_samples, o.seed, g))
    reference = np.concatenate(list(_real_images(networks, o.dataset, o.data_dir, split="test",
                                                 max_examples=len(images))))
    batches = _real_images(networks, o.dataset, o.data_dir, max_examples=o.max_train or None)
    r = neighbors.run(networks, o.out_dir, images, batches, o.k, reference)
    return (f"{len(images)} samples vs {r['num_train_images']} training images: nearest pixel "
            f"distance median {r['pixels']['samples_nearest_median']:.2f} (min "
            f"{r['pixels']['samples_nearest_min']:.2f}; held-out real images: median "
            f"{r['pixels']['reference_nearest_median']:.2f})")


def _check_dissect_options(o):
    if o.threshold not in dissection.THRESHOLDS:
        raise ValueError(f"--threshold must be one of {', '.join(dissection.THRESHOLDS)}, "
                         f"got {o.threshold!r}")
    if o.threshold == "quantile" and not 0 < o.quantile < 1:
        raise ValueError(f"--quantile must be in (0, 1), got {o.quantile}")
    if o.num_dissect < 1 or o.num_units < 1:
        raise ValueError(f"--num_dissect and --num_units must be >= 1, got {o.num_dissect} "
                         f"and {o.num_units}")


def run_dissect(networks, o):
    g, seed = networks.generator, o.seed
    _check_dissect_options(o)
    if o.num_intervene < 0 or o.insert_locations < 1 or o.ace_epochs < 1:
        raise ValueError(f"--num_intervene must be >= 0, --insert_locations and --ace_epochs "
                         f">= 1, got {o.num_intervene}, {o.insert_locations} and "
                         f"{o.ace_epochs}")
    layers = list(o.layers or g.conv_layer_names)
    for layer in layers:
        nethook.check_layer(g, layer)
    seg = segmenters.load(o.segmenter)
    r = dissection.run(
        g, seg, o.out_dir, _latents(o.num_dissect, seed, g), layers, threshold=o.threshold,
        q=o.quantile, units=o.unit_set, num_units=o.num_units, num_examples=o.top_k,
        concept=o.concept, ignore=tuple(o.ignore_concepts or ()),
        intervene_z=_latents(o.num_intervene, seed + 1, g) if o.num_intervene else None,
        ace_epochs=o.ace_epochs, per_sample=o.insert_locations, seed=seed,
        progress=lambda line: print(f"dissect {line}", file=sys.stderr, flush=True))
    line = "; ".join(
        f"{name}: {v['interpretable_units']}/{v['units']} units interpretable ("
        + ", ".join(f"{c} {n}" for c, n in v["interpretable"].items()) + ")"
        for name, v in r["layers"].items()) + f". Best layer {r['best_layer']}"
    for concept, i in r.get("intervention", {}).get("concepts", {}).items():
        parts = [f"{kind} units {100 * i['ablation'][kind]['removed']:.0f}% removed, "
                 f"insertion takes {100 * i['insertion'][kind]['rate']:.0f}%"
                 for kind in i["units"]]
        line += f"; {concept}: " + ", ".join(parts)
    return line


def run_paint(networks, o):
    g, layer, workdir = networks.generator, o.layer, networks.workdir
    httpd = server.bind(o.host, o.port)  # first: a taken port fails before any slow work
    try:
        seg = segmenters.load(o.segmenter)
        if o.dissection:
            result = launch.load_dissection(o.dissection, g, seg)
        else:
            directory = o.out_dir or (os.path.join(workdir, "dissection") if workdir else None)
            if not directory:
                raise ValueError("paint from --export_dir needs --out_dir (where the "
                                 "dissection goes) or --dissection")
            layers = list(o.layers or ([layer] if layer else g.conv_layer_names))
            for name in layers:
                nethook.check_layer(g, name)
            _check_dissect_options(o)
            result = launch.dissection_for(
                g, seg, directory, _latents(o.num_dissect, o.seed, g), layers,
                threshold=o.threshold, q=o.quantile, units=o.unit_set,
                num_units=o.num_units, num_examples=o.top_k,
                ignore=tuple(o.ignore_concepts or ()))
        if layer:
            if layer not in result["layers"]:
                raise ValueError(f"--layer={layer} is not in the dissection (its layers: "
                                 f"{', '.join(result['layers'])})")
            result = dict(result, best_layer=layer)
        painter = edits.Painter(g, result, seg, o.num_units, o.unit_set,
                                networks.discriminator, networks.preprocess)
    except BaseException:
        httpd.server_close()
        raise
    return launch.serve(httpd, painter, o.seed)


def run_invert(networks, o):
    g = networks.generator
    if not o.images:
        raise ValueError("invert needs --images: a folder of images, or a .npz/.npy of them")
    images, note = invert.load_images(o.images, g.image_size, g.channels,
                                      networks.preprocess, o.max_images)
    r = invert.run(g, networks.discriminator, images, o.out_dir, o.starts, o.inversion_steps,
                   o.learning_rate, o.feature_weight, o.seed, note)
    return (f"inverted {r['num_images']} images: mean PSNR {r['mean_psnr']:.2f} dB; "
            f"z and reconstructions in {o.out_dir}/inverted.npz, pairs in inversion.png")


# verb -> run_<verb>(networks, the verb's options dataclass) -> a summary line
VERBS = {"walk": run_walk, "arithmetic": run_arithmetic, "guided_backprop": run_guided_backprop,
         "forget": run_forget, "neighbors": run_neighbors, "dissect": run_dissect,
         "paint": run_paint, "invert": run_invert}


def run(verb, out_dir, workdir=None, export_dir=None, checkpoint="latest",
        generator_weights="generator", **options):
    """Runs one verb (a key of VERBS) on the networks of a workdir or an export.

    Args:
        verb: a key of VERBS.
        out_dir: where the PNGs and JSON go (paint: where a new dissection goes).
        workdir, export_dir, checkpoint, generator_weights: the networks (exactly one of
            workdir and export_dir; see workdir.load_networks).
        **options: the verb's options by name (`options.VERBS[verb]`, defaults for the
            rest). The binary passes the values of every flag the verb takes; names of
            other verbs' options are left out here (the binary refuses the ones that a
            user set), a name no verb takes is a TypeError.
    Returns:
        A one-line summary; the PNGs and JSON are in out_dir.
    """
    verb_options = options_lib.for_verb(verb, dict(options, out_dir=out_dir))
    networks = workdir_lib.load_networks(workdir, export_dir, checkpoint, generator_weights)
    return VERBS[verb](networks, verb_options)
