r"""GAN Dissection as the paper does it, on the random-colour shapes bed (docs/benchmarks.md,
"GAN Dissection").

    python benchmarks/dissection.py --workdir=runs/shapes_random64 \
        --segmenter=runs/segmenter_random64/segmenter --out=runs/dissect_random64

The workdir is a DCGAN trained on `--dataset=shapes_random` (every object's colour drawn
independently of its kind), the segmenter a learned one (binaries/train_segmenter.py) of
the same data. Steps, each printed as it ends:

1. the test bed: the concept shares of G's samples against the real scenes' (exact masks,
   and the learned segmenter on the same scenes, which also gives its IoU there);
2. dissection of every conv layer of G under both thresholds (GAN Dissection's IQR, and
   Network Dissection's top 0.5% for comparison): units interpretable per layer and concept;
3. on the layer with the most interpretable units, for each kind: the IQR dissection's
   interventions with --unit_set=ace, i.e. ablation of the kind's 20 IoU-ranked, 20
   ACE-optimised and 20 random units (its share removed, the other kinds' shares, the
   colour histogram's change) and insertion of each set at cells where the kind is absent
   (the rate at which it takes, by location).

Writes OUT/bed.json, OUT/iqr/ and OUT/quantile/ (each `analyze dissect`'s outputs) and
OUT/summary.md (the tables of docs/benchmarks.md).
"""
import json
import os
import platform
import sys
import time

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "runs/shapes_random64", "A DCGAN trained on shapes_random.")
flags.DEFINE_string("segmenter", "runs/segmenter_random64/segmenter",
                    "The learned segmenter's directory (binaries.train_segmenter).")
flags.DEFINE_string("out", "runs/dissect_random64", "Output directory.")
flags.DEFINE_integer("num_dissect", 1000, "Samples dissected (the analyze verb's default).")
flags.DEFINE_integer("num_intervene", 500, "Samples of each intervention.")
flags.DEFINE_integer("num_units", 20, "Units of each set.")
flags.DEFINE_integer("ace_epochs", 5, "Passes of the alpha optimisation.")
flags.DEFINE_integer("num_real", 1000, "Real test scenes of the bed check.")
flags.DEFINE_list("intervene_layers", [], "Also intervene on each of these layers (each "
                  "dissected alone into OUT/iqr_<layer>), beside the best layer's.")

KINDS = ("circle", "square", "triangle")


def _say(line):
    print(line, file=sys.stderr, flush=True)


def bed_check(g, seg, dataset, num_real, num_fake):
    """Concept shares of G's samples (learned segmenter) and of real test scenes (exact
    masks and learned segmenter), and the segmenter's per-concept IoU on those scenes."""
    from dcgan_keras.analysis import outputs
    from dcgan_keras.data import datasets, shapes
    from dcgan_keras.exporters import sampling
    colors = datasets.SHAPES[dataset]
    images, truth = shapes.render_batch(range(num_real), g.image_size, "test", colors)
    predicted = seg(images)
    fake = outputs.generator_fn(g)(sampling.latents(num_fake, 0, g.z_dim,
                                                    g.z_distribution).numpy())
    fake_labels = seg(fake)
    shares = lambda labels: {c: float(np.mean(labels == k)) for k, c in enumerate(seg.concepts)}
    ious = {}
    for k, c in enumerate(seg.concepts):
        inter = np.sum((predicted == k) & (truth == k))
        union = np.sum((predicted == k) | (truth == k))
        ious[c] = float(inter / union) if union else 0.0
    outputs.write_grid(FLAGS.out, "samples.png", fake[:64], cols=8)
    return {"real_exact": shares(truth), "real_segmenter": shares(predicted),
            "generated_segmenter": shares(fake_labels), "segmenter_iou_real": ious,
            "real_scenes": num_real, "generated": num_fake}


def cpu_model():
    """The CPU's model name (lscpu's), or the architecture."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def _table(rows, header):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def summary(bed, results, seconds):
    parts = [f"Machine: {cpu_model()}, "
             f"{os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}; "
             f"{seconds['iqr']:.0f} s for the IQR dissection with interventions, "
             f"{seconds['quantile']:.0f} s for the quantile one.", "",
             "Concept shares (pixels):", ""]
    concepts = list(bed["real_exact"])
    parts.append(_table([[c, f"{100 * bed['real_exact'][c]:.1f}%",
                          f"{100 * bed['real_segmenter'][c]:.1f}%",
                          f"{100 * bed['generated_segmenter'][c]:.1f}%",
                          f"{bed['segmenter_iou_real'][c]:.3f}"] for c in concepts],
                        ["concept", "real (exact masks)", "real (segmenter)",
                         "G's samples (segmenter)", "segmenter IoU on real"]))
    parts += ["", "Units interpretable (IoU > 0.05 and IQR > 0.01), per layer and concept:", ""]
    rows = []
    for rule, r in results.items():
        if rule not in ("iqr", "quantile"):  # the other runs dissect one layer again
            continue
        for name, layer in r["layers"].items():
            rows.append([rule, name, f"{layer['interpretable_units']}/{layer['units']}"]
                        + [layer["interpretable"][k] for k in KINDS])
    parts.append(_table(rows, ["threshold", "layer", "any", *KINDS]))
    for key, r in results.items():
        if key != "quantile" and r.get("intervention"):
            parts += intervention_table(r["intervention"])
    return "\n".join(parts) + "\n"


def intervention_table(i):
    """The markdown lines of one layer's interventions."""
    parts = []
    if i:
        parts += ["", f"Interventions on {i['layer']} ({FLAGS.num_units} units per set):", ""]
        rows = []
        for kind, r in i["concepts"].items():
            for name, a in r["ablation"].items():
                others = ", ".join(
                    f"{o} {100 * (a['all_shares'][o][1] - a['all_shares'][o][0]):+.2f} pt"
                    for o in KINDS if o != kind)
                hue = a["hue_removed"]
                n = r["insertion"][name]
                rows.append([kind, name, f"{100 * a['removed']:.1f}%",
                             f"{a['ace']:+.4f} +- {a['ci95']:.4f}", others,
                             f"{100 * min(hue):.0f}..{100 * max(hue):.0f}%",
                             f"{100 * n['rate']:.1f}% of {n['tries']}"])
        parts.append(_table(rows, ["kind", "units", "its pixels removed", "ACE",
                                   "other kinds' shares", "hue bins removed (min..max)",
                                   "insertion takes"]))
    return parts


def main(_):
    from dcgan_keras.analysis import analyze_lib, outputs
    from dcgan_keras import workdir as workdir_lib
    from dcgan_keras.analysis.dissect import segmenters
    os.makedirs(FLAGS.out, exist_ok=True)
    networks = workdir_lib.networks_from_workdir(FLAGS.workdir)
    g = networks.generator
    seg = segmenters.load(FLAGS.segmenter)
    bed = bed_check(g, seg, networks.dataset, FLAGS.num_real, FLAGS.num_dissect)
    outputs.write_json(FLAGS.out, "bed.json", bed)
    _say("bed: " + json.dumps(bed))
    results, seconds = {}, {}
    runs = [("quantile", "quantile", None), ("iqr", "iqr", None)] + [
        (f"iqr_{layer}", "iqr", [layer]) for layer in FLAGS.intervene_layers]
    for key, rule, layers in runs:
        start = time.perf_counter()
        extra = dict(unit_set="ace", num_intervene=FLAGS.num_intervene,
                     ace_epochs=FLAGS.ace_epochs) if rule == "iqr" else dict(num_intervene=0)
        line = analyze_lib.run("dissect", os.path.join(FLAGS.out, key),
                               workdir=FLAGS.workdir, segmenter=FLAGS.segmenter,
                               threshold=rule, num_dissect=FLAGS.num_dissect,
                               num_units=FLAGS.num_units, layers=layers, **extra)
        seconds[key] = time.perf_counter() - start
        _say(f"{key}: {line}")
        with open(os.path.join(FLAGS.out, key, "dissect.json")) as f:
            results[key] = json.load(f)
    text = summary(bed, results, seconds)
    with open(os.path.join(FLAGS.out, "summary.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    app.run(main)
