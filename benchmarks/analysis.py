r"""The paper's section 6 measured: shapes (walk sharpness, forget) and Fashion-MNIST
(arithmetic across garment kinds, nearest neighbours).

    .venv/bin/python benchmarks/analysis.py --out=runs/analysis [--docs=docs/images]

Trains (or resumes, finishing at once when done) through the train binary:
- shapes, 32x32 RGB, base_width 64, 2 epochs of the 50,000 scenes;
- Fashion-MNIST, 32x32 zero-padded, base_width 64, 3 epochs;
- the domain classifier (2 epochs) that names the garment kind of generated images;
then runs `python -m dcgan_keras.binaries.analyze` verbs on them, prints every number and
writes OUT/analysis.json; with --docs, copies (the first rows of) the pictures there.
Measured 2026-12-01 on the project's 2-core VM under load: 26 min in all (~18 min of
training, ~8 min of analysis); results in docs/benchmarks.md.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

KINDS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
         "Bag", "Ankle boot"]
# A - B + C by garment kind, and the attribute A - B applied to C.
EXPRESSIONS = {"pullover-tshirt+dress": (2, 0, 3), "ankleboot-sneaker+sandal": (9, 7, 5),
               "coat-pullover+shirt": (4, 2, 6)}


MAX_MAPS = (0, 16)  # forget: every map with a positive weight (0), or the 16 largest
TILE = 32 + 2  # a 32x32 grid tile with its padding


def copy_rows(src, dst, rows):
    """Copies the first `rows` rows of tiles of a PNG grid (small pictures for the docs)."""
    from dcgan_keras.utils import images as images_lib  # noqa: PLC0415
    images_lib.write_png(dst, images_lib.read_png(src)[:rows * TILE + 2])


def sh(*args):
    """Runs a dcgan_keras binary; returns its stdout (fails loudly)."""
    print("$ python -m", " ".join(args), flush=True)
    proc = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    print(proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "", flush=True)
    return proc.stdout


def train(out):
    common = ["--image_size=32", "--base_width=64"]
    sh("dcgan_keras.binaries.train", "--dataset=shapes", "--channels=3", "--epochs=2",
       f"--workdir={out}/shapes", *common)
    sh("dcgan_keras.binaries.train", "--dataset=fashion_mnist", "--channels=1",
       "--preprocess=pad", "--epochs=3", f"--workdir={out}/fmnist", *common)
    if not os.path.exists(f"{out}/fmnist_classifier/classifier.json"):
        sh("dcgan_keras.binaries.train_classifier", "--dataset=fashion_mnist",
           "--image_size=32", "--channels=1", "--preprocess=pad", "--epochs=2",
           f"--workdir={out}/fmnist_classifier")


REUSE = False  # --reuse: keep the results already in an out_dir


def analyze(verb, workdir, out_dir, *flags):
    path = os.path.join(out_dir, f"{verb}.json")
    if not (REUSE and os.path.exists(path)):
        sh("dcgan_keras.binaries.analyze", verb, f"--workdir={workdir}", f"--out_dir={out_dir}",
           *flags)
    return json.load(open(path))


def exemplars(sheet, classifier_dir, num=3):
    """Per garment kind, the sheet indices of the `num` samples the classifier is surest of."""
    import keras  # noqa: PLC0415
    images = np.load(sheet)["images"].astype(np.float32) / 127.5 - 1.0
    probs = keras.saving.load_model(f"{classifier_dir}/classifier.keras").predict(
        images, verbose=0)
    return {k: [int(i) for i in np.argsort(-probs[:, k])[:num]] for k in range(len(KINDS))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/analysis")
    parser.add_argument("--docs", default=None, help="copy the pictures here (docs/images)")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the results of verbs whose out_dir has them")
    args = parser.parse_args()
    global REUSE
    REUSE = args.reuse
    out = args.out
    train(out)
    results = {}
    shapes, fmnist = f"{out}/shapes", f"{out}/fmnist"
    results["shapes_walk"] = analyze("walk", shapes, f"{out}/shapes_walk", "--num_walks=32",
                                     "--steps=10")
    for concept in ("circle", "square", "triangle"):
        for maps in MAX_MAPS:  # the paper's drop (every positive weight), then the largest few
            results[f"shapes_forget_{concept}_{maps}"] = analyze(
                "forget", shapes, f"{out}/shapes_forget_{concept}_{maps}", f"--concept={concept}",
                "--num_annotated=150", "--num_new=256", f"--max_maps={maps}")
    results["shapes_guided_backprop"] = analyze("guided_backprop", shapes,
                                                f"{out}/shapes_guided_backprop")
    results["fmnist_walk"] = analyze("walk", fmnist, f"{out}/fmnist_walk", "--num_walks=32",
                                     "--steps=10")
    sheet = f"{out}/fmnist_sheet.npz"
    if not (REUSE and os.path.exists(sheet)):
        sh("dcgan_keras.binaries.sample", f"--workdir={fmnist}", "--num=512", "--seed=1",
           f"--out={sheet}")
    picks = exemplars(sheet, f"{out}/fmnist_classifier")
    results["fmnist_exemplars"] = {KINDS[k]: v for k, v in picks.items()}
    for name, (a, b, c) in EXPRESSIONS.items():
        groups = ";".join(",".join(map(str, picks[k])) for k in (a, b, c))
        r = analyze("arithmetic", fmnist, f"{out}/fmnist_arithmetic_{name}", f"--sheet={sheet}",
                    f"--groups={groups}", f"--classifier={out}/fmnist_classifier")
        r["kinds"] = [KINDS[k] for k in (a, b, c)]
        r["neighbourhood_kinds"] = [KINDS[k] for k in r["neighbourhood_classes"]]
        r["attribute_kinds"] = [KINDS[k] for k in r["attribute_classes"]]
        results[f"fmnist_arithmetic_{name}"] = r
    results["fmnist_neighbors"] = analyze("neighbors", fmnist, f"{out}/fmnist_neighbors",
                                          "--num_samples=16", "--k=5")
    with open(f"{out}/analysis.json", "w") as f:
        json.dump(results, f, indent=2)
    summary(results)
    if args.docs:
        os.makedirs(args.docs, exist_ok=True)
        for src, dst in [("shapes_walk/walk_linear.png", "shapes_walk.png"),
                         ("shapes_walk/walk_linear_untrained.png", "shapes_walk_untrained.png"),
                         ("shapes_forget_square_0/forget.png", "shapes_forget_square.png"),
                         ("shapes_forget_square_16/forget.png", "shapes_forget_square_16.png"),
                         ("shapes_guided_backprop/guided_backprop.png", "shapes_guided_backprop.png"),
                         ("shapes_guided_backprop/guided_backprop_random.png",
                          "shapes_guided_backprop_random.png"),
                         ("fmnist_walk/walk_spherical.png", "fmnist_walk.png"),
                         ("fmnist_neighbors/neighbors_pixels.png", "fmnist_neighbors_pixels.png"),
                         ("fmnist_neighbors/neighbors_features.png",
                          "fmnist_neighbors_features.png")] + [
                (f"fmnist_arithmetic_{n}/{p}.png", f"fmnist_{n.replace('+', '_plus_')}_{p}.png")
                for n in EXPRESSIONS for p in ("arithmetic", "neighbourhood", "attribute")]:
            # shapes pictures are noisy and compress badly: fewer rows of them
            copy_rows(os.path.join(out, src), os.path.join(args.docs, dst),
                      4 if dst.startswith("shapes") else 8)


def summary(results):
    for data in ("shapes", "fmnist"):
        walk = results[f"{data}_walk"]
        for mode in ("linear", "spherical"):
            print(f"{data} walk {mode}: sharpness trained "
                  f"{walk[mode]['trained']['mean_sharpness']:.3f} (max "
                  f"{walk[mode]['trained']['max_sharpness']:.2f}), untrained "
                  f"{walk[mode]['untrained']['mean_sharpness']:.3f} (max "
                  f"{walk[mode]['untrained']['max_sharpness']:.2f})")
    for concept in ("circle", "square", "triangle"):
        for maps in MAX_MAPS:
            r = results[f"shapes_forget_{concept}_{maps}"]
            others = ", ".join(f"{name} {kept:.4f} -> {dropped:.4f}" for name, (kept, dropped)
                               in r["pixel_shares"].items() if name != concept)
            print(f"forget {concept} at {r['layer']}: dropped {r['maps_dropped']}/{r['maps']} "
                  f"maps (regression accuracy {r['regression_accuracy']:.3f}); pixel share "
                  f"{r['pixel_share_kept']:.4f} -> {r['pixel_share_dropped']:.4f}: "
                  f"{100 * r['pixel_share_drop']:.1f}% drop; others: {others}")
    for name in EXPRESSIONS:
        r = results[f"fmnist_arithmetic_{name}"]
        print(f"{' - '.join(r['kinds'][:2])} + {r['kinds'][2]}: neighbourhood classified "
              f"{r['neighbourhood_kinds']}; attribute path {r['attribute_kinds']}")
    r = results["fmnist_neighbors"]
    for space in ("pixels", "features"):
        print(f"neighbors ({space}): nearest training image of a sample: median "
              f"{r[space]['samples_nearest_median']:.2f}, min {r[space]['samples_nearest_min']:.2f}"
              f"; of a held-out test image: median {r[space]['reference_nearest_median']:.2f}, "
              f"min {r[space]['reference_nearest_min']:.2f} ({r['num_train_images']} searched)")


if __name__ == "__main__":
    main()
