"""The `analyze` binary's library: one function per verb, from options to outputs.

Each verb loads the networks (workdir or export), gathers its inputs (sample sheets,
boxes, real images), calls its experiment's `run` and returns a short summary line.
"""
import os
import sys

import numpy as np

from dcgan_keras.analysis import (arithmetic, dissection, forget, guided_backprop,
                                  interpolation, loading, neighbors, nethook, outputs,
                                  segmenters)

OPTIONS = ("workdir", "export_dir", "checkpoint", "generator_weights", "out_dir", "seed",
           "layer", "sheet", "dataset", "data_dir", "num_walks", "steps", "modes",
           "compare_untrained", "groups", "z_files", "scales", "classifier", "units", "top_k",
           "num_images", "boxes", "concept", "num_annotated", "num_new", "max_maps",
           "num_samples", "k", "max_train", "layers", "segmenter", "quantile", "num_dissect",
           "num_units", "num_intervene", "region", "ignore_concepts", "dissection", "host",
           "port")


def _latents(num, seed, z_dim):
    from dcgan_keras.exporters import sampling  # noqa: PLC0415 (the sample binary's z)
    return sampling.latents(num, seed, z_dim).numpy()


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


def run_walk(networks, out_dir, seed, num_walks, steps, modes, compare_untrained, **_):
    result = interpolation.run(networks, out_dir, num_walks, steps, modes, seed,
                               compare_untrained)
    return "; ".join(f"{mode} walks: mean sharpness " + ", ".join(
        f"{name} {r['mean_sharpness']:.2f}" for name, r in result[mode].items())
        for mode in modes) + f" (max step / mean step, {num_walks} walks of {steps})"


def _classifier(path):
    import keras  # noqa: PLC0415
    from dcgan_keras.evaluation import feature_nets  # noqa: PLC0415
    model = keras.saving.load_model(f"{path}/{feature_nets.CLASSIFIER_FILE}")
    return lambda images: np.asarray(model.predict(images, verbose=0))


def run_arithmetic(networks, out_dir, seed, sheet, groups, z_files, scales, classifier, **_):
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
    result = arithmetic.run(networks, out_dir, concepts, names, exemplars,
                            [float(s) for s in scales], seed=seed,
                            classify=_classifier(classifier) if classifier else None)
    extra = (f"; result classified as {result['neighbourhood_classes']}"
             if classifier else "")
    return (f"{result['expression']}: arithmetic.png, neighbourhood.png, attribute.png "
            f"({result['attribute']}){extra}")


def run_guided_backprop(networks, out_dir, seed, layer, units, top_k, num_images, dataset,
                        data_dir, **_):
    real = np.concatenate(list(_real_images(networks, dataset, data_dir,
                                            max_examples=num_images)))
    result = guided_backprop.run(networks, out_dir, real, layer, [int(u) for u in units],
                                 top_k, seed)
    return (f"layer {result['layer']}, units {result['units']}: top {top_k} of "
            f"{len(real)} real images and their guided-backprop maps, trained and random D")


def run_forget(networks, out_dir, seed, layer, sheet, boxes, concept, num_annotated,
               num_new, max_maps=0, **_):
    from dcgan_keras.data import shapes  # noqa: PLC0415
    g = networks.generator
    layer = layer or g.conv_layer_names[-2]  # the paper's second-highest conv layer
    if sheet:
        images, z = _sheet(sheet, g)
    else:
        z = _latents(num_annotated, seed, g.z_dim)
        images = outputs.generator_fn(g)(z)
    segmenter = label = None
    if concept:
        if concept not in shapes.KINDS:
            raise ValueError(f"--concept must be one of {', '.join(shapes.KINDS)} (the shapes "
                             f"segmenter's objects), got {concept!r}")
        if g.channels != 3:
            raise ValueError("--concept needs an RGB generator (trained on --dataset=shapes)")
        segmenter, label = shapes.segment, shapes.CONCEPTS.index(concept)
    if boxes:
        box_map = forget.load_boxes(boxes, len(z), g.image_size)
    elif segmenter is not None:
        box_map = forget.boxes_from_masks(segmenter(images) == label)
    else:
        raise ValueError("forget needs --boxes (with --sheet), or --concept on shapes")
    new_z = _latents(num_new, seed + 1, g.z_dim)
    r = forget.run(networks, out_dir, layer, z, box_map, new_z, segmenter, label,
                   shapes.CONCEPTS if segmenter is not None else None, max_maps=max_maps)
    line = (f"layer {layer}: regression accuracy {r['regression_accuracy']:.3f} on "
            f"{r['annotated_samples']} samples; dropped {r['maps_dropped']} of {r['maps']} "
            f"maps; inside score {r['inside_score_kept']:.3f} -> {r['inside_score_dropped']:.3f}")
    if segmenter is not None:
        line += (f"; {concept} pixel share {r['pixel_share_kept']:.4f} -> "
                 f"{r['pixel_share_dropped']:.4f} ({100 * r['pixel_share_drop']:.1f}% drop); "
                 "others: " + ", ".join(f"{name} {kept:.4f} -> {dropped:.4f}" for name, (
                     kept, dropped) in r["pixel_shares"].items() if name != concept))
    return line


def run_neighbors(networks, out_dir, seed, sheet, num_samples, k, max_train, dataset,
                  data_dir, **_):
    g = networks.generator
    if sheet:
        images = _sheet(sheet, g)[0].astype(np.float32) / 127.5 - 1.0
    else:
        images = outputs.generator_fn(g)(_latents(num_samples, seed, g.z_dim))
    reference = np.concatenate(list(_real_images(networks, dataset, data_dir, split="test",
                                                 max_examples=len(images))))
    batches = _real_images(networks, dataset, data_dir, max_examples=max_train or None)
    r = neighbors.run(networks, out_dir, images, batches, k, reference)
    return (f"{len(images)} samples vs {r['num_train_images']} training images: nearest pixel "
            f"distance median {r['pixels']['samples_nearest_median']:.2f} (min "
            f"{r['pixels']['samples_nearest_min']:.2f}; held-out real images: median "
            f"{r['pixels']['reference_nearest_median']:.2f})")


def _region(region, image_size):
    if not region:
        return None
    try:
        box = tuple(int(v) for v in region)
    except ValueError:
        box = ()
    if len(box) != 4 or not (0 <= box[0] < box[2] <= image_size
                             and 0 <= box[1] < box[3] <= image_size):
        raise ValueError(f"--region must be x0,y0,x1,y1 with 0 <= x0 < x1 <= {image_size} "
                         f"(pixels), got {','.join(map(str, region))}")
    return box


def run_dissect(networks, out_dir, seed, layers, segmenter, quantile, num_dissect, num_units,
                num_intervene, region, concept, ignore_concepts, top_k, **_):
    g = networks.generator
    if num_dissect < 1 or num_intervene < 0:
        raise ValueError(f"--num_dissect must be >= 1 and --num_intervene >= 0, got "
                         f"{num_dissect} and {num_intervene}")
    layers = list(layers or g.conv_layer_names)
    for layer in layers:
        nethook.check_layer(g, layer)
    seg = segmenters.load(segmenter)
    r = dissection.run(
        g, seg, out_dir, _latents(num_dissect, seed, g.z_dim), layers, q=quantile,
        num_units=num_units, num_examples=top_k, concept=concept,
        ignore=tuple(ignore_concepts or ()), region=_region(region, g.image_size),
        intervene_z=_latents(num_intervene, seed + 1, g.z_dim) if num_intervene else None,
        seed=seed, progress=lambda line: print(f"dissect {line}", file=sys.stderr, flush=True))
    layer = r["layers"][r["best_layer"]]
    line = ("; ".join(f"{name}: {v['matched_units']}/{v['units']} units IoU > {v['cutoff']}"
                      for name, v in r["layers"].items())
            + f". Best layer {r['best_layer']}, concept {r['concept']}: top-{num_units} IoU "
            f"{layer['best_units'][r['concept']]['iou'][0]:.3f}..."
            f"{layer['best_units'][r['concept']]['iou'][-1]:.3f}")
    if "intervention" in r:
        i = r["intervention"]
        a, n = i["ablation"], i["insertion"]
        line += (f"; ablation: its pixels {-100 * a['units']['removed']:+.1f}% (ACE "
                 f"{a['units']['ace']:+.4f} +- {a['units']['ci95']:.4f}; random units "
                 f"{-100 * a['random']['removed']:+.1f}%, ACE {a['random']['ace']:+.4f} +- "
                 f"{a['random']['ci95']:.4f}); insertion in {tuple(i['region'])}: ACE "
                 f"{n['units']['ace']:+.4f} +- {n['units']['ci95']:.4f} (random "
                 f"{n['random']['ace']:+.4f} +- {n['random']['ci95']:.4f})")
    return line


def run_paint(networks, out_dir, seed, layer, layers, segmenter, quantile, num_dissect,
              num_units, ignore_concepts, top_k, dissection, host, port, workdir=None, **_):
    from dcgan_keras.analysis.paint import edits, launch, server  # noqa: PLC0415
    g = networks.generator
    httpd = server.bind(host, port)  # first: a taken port fails before any slow work
    try:
        seg = segmenters.load(segmenter)
        if dissection:
            result = launch.load_dissection(dissection, g, seg)
        else:
            directory = out_dir or (os.path.join(workdir, "dissection") if workdir else None)
            if not directory:
                raise ValueError("paint from --export_dir needs --out_dir (where the "
                                 "dissection goes) or --dissection")
            layers = list(layers or ([layer] if layer else g.conv_layer_names))
            for name in layers:
                nethook.check_layer(g, name)
            result = launch.dissection_for(
                g, seg, directory, _latents(num_dissect, seed, g.z_dim), layers, q=quantile,
                num_units=num_units, num_examples=top_k, ignore=tuple(ignore_concepts or ()))
        if layer:
            if layer not in result["layers"]:
                raise ValueError(f"--layer={layer} is not in the dissection (its layers: "
                                 f"{', '.join(result['layers'])})")
            result = dict(result, best_layer=layer)
        painter = edits.Painter(g, result, seg, num_units)
    except BaseException:
        httpd.server_close()
        raise
    return launch.serve(httpd, painter, seed)


VERBS = {"walk": run_walk, "arithmetic": run_arithmetic, "guided_backprop": run_guided_backprop,
         "forget": run_forget, "neighbors": run_neighbors, "dissect": run_dissect,
         "paint": run_paint}


def run(verb, out_dir, workdir=None, export_dir=None, checkpoint="latest",
        generator_weights="generator", **options):
    """Runs one verb (a key of VERBS) on the networks of a workdir or an export.

    Returns:
        A one-line summary; the PNGs and JSON are in out_dir.
    """
    if verb not in VERBS:
        raise ValueError(f"unknown verb {verb!r}; choose one of {', '.join(VERBS)}")
    networks = loading.load(workdir, export_dir, checkpoint, generator_weights)
    return VERBS[verb](networks, out_dir, workdir=workdir, **options)
