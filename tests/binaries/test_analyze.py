"""The analyze binary end to end: every verb on a tiny shapes model trained through the
train binary (from its workdir and from its export), and bad input as one clear line."""
import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from testutil import lively, run_binary

from dcgan_keras.analysis import analyze_lib, nethook
from dcgan_keras.analysis.dissect import forget
from dcgan_keras.data import shapes
from dcgan_keras.exporters import sampling
from dcgan_keras.utils import images as images_lib
from dcgan_keras.workdir import restore_models

SIZE, PAD = 16, 2  # image side and make_grid's padding


@pytest.fixture(scope="module")
def run(tmp_path_factory, shapes_workdir):
    """(workdir, export_dir, sheet) of a 2-step --dataset=shapes run of the train binary."""
    root = tmp_path_factory.mktemp("analyze")
    workdir = shapes_workdir
    sheet = str(root / "sheet.npz")
    images, z = sampling.sample_from_workdir(workdir, 12, seed=5)
    sampling.save_samples(sheet, images, z)
    return workdir, os.path.join(workdir, "export"), sheet


def _analyze(verb, *args):
    return run_binary("dcgan_keras.binaries.analyze", verb, *args, timeout=300)


def _grid_shape(rows, cols):
    return (rows * (SIZE + PAD) + PAD, cols * (SIZE + PAD) + PAD, 3)


def _ok(proc):
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_walk(run, tmp_path):
    out = str(tmp_path)
    stdout = _ok(_analyze("walk", f"--workdir={run[0]}", f"--out_dir={out}", "--num_walks=3",
                          "--steps=5"))
    assert "linear walks: mean sharpness trained" in stdout and "untrained" in stdout
    result = json.load(open(os.path.join(out, "walk.json")))
    for mode in ("linear", "spherical"):
        for name in ("trained", "untrained"):
            sharp = result[mode][name]["sharpness"]
            assert len(sharp) == 3 and all(1.0 <= s <= 4.0 for s in sharp)
        grid = images_lib.read_png(os.path.join(out, f"walk_{mode}.png"))
        assert grid.shape == _grid_shape(3, 5)


def test_arithmetic_from_an_export(run, tmp_path):
    out = str(tmp_path)
    _ok(_analyze("arithmetic", f"--export_dir={run[1]}", f"--out_dir={out}",
                 f"--sheet={run[2]}", "--groups=0,1,2;3,4,5;6,7,8", "--scales=0,1,2"))
    result = json.load(open(os.path.join(out, "arithmetic.json")))
    assert result["expression"] == "0,1,2 - 3,4,5 + 6,7,8" and result["scales"] == [0, 1, 2]
    assert images_lib.read_png(os.path.join(out, "arithmetic.png")).shape == _grid_shape(4, 4)
    assert images_lib.read_png(os.path.join(out, "neighbourhood.png")).shape == _grid_shape(3, 3)
    assert images_lib.read_png(os.path.join(out, "attribute.png")).shape == _grid_shape(1, 3)


def test_guided_backprop(run, tmp_path):
    out = str(tmp_path)
    stdout = _ok(_analyze("guided_backprop", f"--workdir={run[0]}", f"--out_dir={out}",
                          "--num_images=40", "--units=0,3", "--top_k=3"))
    assert "layer block2_lrelu, units [0, 3]" in stdout  # D's last conv block by default
    result = json.load(open(os.path.join(out, "guided_backprop.json")))
    for name in ("trained", "random"):
        acts = np.array(result[name]["top_activations"])
        assert acts.shape == (2, 3) and (np.diff(acts, axis=1) <= 0).all()  # best first
    for name in ("guided_backprop.png", "guided_backprop_random.png"):
        assert images_lib.read_png(os.path.join(out, name)).shape == _grid_shape(4, 3)


def test_forget_with_a_box_file(run, tmp_path):
    out = str(tmp_path / "out")
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"0": [[0, 0, 8, 8]], "1": [[4, 4, 12, 16]], "2": []}))
    stdout = _ok(_analyze("forget", f"--workdir={run[0]}", f"--out_dir={out}",
                          f"--sheet={run[2]}", f"--boxes={boxes}", "--num_new=4"))
    result = json.load(open(os.path.join(out, "forget.json")))
    assert result["layer"] == "project_relu"  # 16x16: the second-highest conv layer
    assert result["annotated_samples"] == 3 and result["samples_with_boxes"] == 2
    assert 0 < result["maps_dropped"] < result["maps"] and "dropped" in stdout
    # The layer is a ReLU output: dropping every positive-weight map lowers the score.
    assert result["inside_score_dropped"] < result["inside_score_kept"]
    assert images_lib.read_png(os.path.join(out, "forget.png")).shape == _grid_shape(2, 4)


def test_neighbors_from_an_export(run, tmp_path):
    out = str(tmp_path)
    stdout = _ok(_analyze("neighbors", f"--export_dir={run[1]}", f"--out_dir={out}",
                          "--num_samples=3", "--k=2", "--max_train=64"))
    assert "3 samples vs 64 training images" in stdout
    result = json.load(open(os.path.join(out, "neighbors.json")))
    for space in ("pixels", "features"):
        d = np.array(result[space]["distances"])
        assert d.shape == (3, 2) and (d[:, 0] <= d[:, 1]).all()
        grid = images_lib.read_png(os.path.join(out, f"neighbors_{space}.png"))
        assert grid.shape == _grid_shape(3, 3)


def test_bad_input_is_one_clear_line(run, tmp_path):
    proc = _analyze("guided_backprop", f"--workdir={run[0]}", f"--out_dir={tmp_path}",
                    "--layer=block9_relu")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "error: unknown layer 'block9_relu' of the discriminator; valid layers: block1_conv")
    bad = tmp_path / "bad.json"
    bad.write_text("{1: [0, 0")
    for verb, flag, message in [
            ("arithmetic", "--groups=0;1;12", "error: sample indices [12] out of range: the "
             "sheet has 12 samples (0..11)"),
            ("forget", f"--boxes={bad}", f"error: box file {bad} does not parse")]:
        proc = _analyze(verb, f"--workdir={run[0]}", f"--out_dir={tmp_path}",
                        f"--sheet={run[2]}", flag)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith(message)
    empty = tmp_path / "no_checkpoints"
    empty.mkdir()
    shutil.copy(os.path.join(run[0], "config.json"), empty / "config.json")
    proc = _analyze("walk", f"--workdir={empty}", f"--out_dir={tmp_path}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "error: no latest checkpoint in" in proc.stderr.strip().splitlines()[-1]


def test_bad_input_raises_the_errors_the_binary_reports(run, tmp_path):
    """The binary turns ValueError / IndexError / FileNotFoundError into one line."""
    common = dict(out_dir=str(tmp_path), workdir=run[0], seed=0, layer=None, sheet=run[2])
    with pytest.raises(IndexError, match=r"sample indices \[12\] out of range"):
        analyze_lib.run("arithmetic", groups="0;1;12", z_files=None, scales=["1"],
                        classifier=None, **common)
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    with pytest.raises(forget.BoxFileError, match="does not parse"):
        analyze_lib.run("forget", boxes=str(bad), concept=None, num_annotated=4, num_new=2,
                        **common)
    with pytest.raises(nethook.UnknownLayerError, match="valid layers: project_reshape, .*block1_relu"):
        analyze_lib.run("forget", boxes=None, concept="square", num_annotated=4, num_new=2,
                        **dict(common, layer="nope"))
    with pytest.raises(FileNotFoundError, match="no config.json"):
        analyze_lib.run("walk", **dict(common, workdir=str(tmp_path)), num_walks=1, steps=2,
                        modes=["linear"], compare_untrained=False)
    assert issubclass(forget.BoxFileError, ValueError)
    assert issubclass(nethook.UnknownLayerError, ValueError)


@pytest.fixture(scope="module")
def lively_checkpoint(tmp_path_factory, shapes_workdir):
    """(G, checkpoint path): the shapes run's networks with G's kernels scaled x10
    (testutil.lively), so that its images are O(1) and coloured: after 2 steps they are
    ~1e-3 and grey, every pixel background, every IoU and causal effect 0."""
    generator, discriminator, step, _ = restore_models(shapes_workdir)
    lively(generator)
    path = tf.train.Checkpoint(generator=generator, discriminator=discriminator,
                               step=tf.Variable(step, dtype=tf.int64)).save(
        str(tmp_path_factory.mktemp("lively") / "ckpt"))
    return generator, path


def _upsample(a, size):
    """Bilinear upsampling [N, h, w, c] -> [N, size, size, c] in float64, half-pixel
    centres, edges clamped (what tf.image.resize does)."""
    a = np.asarray(a, np.float64)
    for axis in (1, 2):
        n = a.shape[axis]
        source = np.clip((np.arange(size) + 0.5) * n / size - 0.5, 0, n - 1)
        low = np.floor(source).astype(int)
        high, weight = np.minimum(low + 1, n - 1), source - low
        shape = [1, 1, 1, 1]
        shape[axis] = size
        a = (np.take(a, low, axis) * (1 - weight.reshape(shape))
             + np.take(a, high, axis) * weight.reshape(shape))
    return a


def _split(generator, layer):
    """(z -> activation, activation -> image) of G, a chain of layers, in inference mode."""
    head = keras.Model(generator.input, generator.get_layer(layer).output)
    names = [each.name for each in generator.layers]
    rest = generator.layers[names.index(layer) + 1:]

    def tail(a):
        x = tf.constant(a, tf.float32)
        for each in rest:
            x = each(x, training=False)
        return x.numpy()
    return lambda z: head(z, training=False).numpy(), tail


def _uint8(images):
    return np.round(np.clip((images + 1) * 127.5, 0, 255)).astype(np.uint8)


def _tiles(path, rows, cols):
    """The [rows * cols, SIZE, SIZE, C] tiles of a make_grid PNG (row-major)."""
    grid = images_lib.read_png(path)
    return np.stack([grid[PAD + r * (SIZE + PAD):][:SIZE, PAD + c * (SIZE + PAD):][:, :SIZE]
                     for r in range(rows) for c in range(cols)])


def _assert_tiles(tiles, want, skip=None):
    """uint8 tiles equal want (within 1 for rounding), except where `skip` [S, S]."""
    keep = np.ones([SIZE, SIZE], bool) if skip is None else ~skip
    diff = np.abs(tiles.astype(int) - want.astype(int))[:, keep]
    assert diff.max() <= 1, (diff.max(), (diff > 1).mean())


def test_dissect(run, lively_checkpoint, tmp_path):
    """--threshold=quantile: each unit's level recomputed here with NumPy from G's
    activations for the binary's z, the same for every concept; --threshold=iqr (the
    default): one level per unit and concept, and the IoU at each level recomputed. Each
    concept's ablation grid shows the samples that show it, before and after its top units
    are zeroed."""
    generator, checkpoint = lively_checkpoint
    # sampling.latents(20, seed 0) and (6, seed + 1) from the run's prior, U(-1, 1)
    z = tf.random.stateless_uniform([20, 8], seed=[0, 0], minval=-1.0, maxval=1.0)
    z_intervene = tf.random.stateless_uniform([6, 8], seed=[1, 0], minval=-1.0, maxval=1.0)
    labels = shapes.segment(generator(z, training=False).numpy())
    results = {}
    for rule, extra in (("quantile", ["--threshold=quantile", "--quantile=0.05"]),
                        ("iqr", [])):
        out = str(tmp_path / rule)
        stdout = _ok(_analyze(
            "dissect", f"--workdir={run[0]}", f"--checkpoint={checkpoint}", f"--out_dir={out}",
            "--num_dissect=20", "--num_intervene=6", "--num_units=3", "--top_k=2", *extra))
        result = results[rule] = json.load(open(os.path.join(out, "dissect.json")))
        assert sorted(result["layers"]) == ["block1_relu", "project_relu"]  # G's conv layers
        assert result["samples"] == 20 and result["threshold"] == rule
        assert result["concepts"][0] == "background"
        for name, layer in result["layers"].items():
            counts = ", ".join(f"{c} {n}" for c, n in layer["interpretable"].items())
            assert (f"{name}: {layer['interpretable_units']}/{layer['units']} units "
                    f"interpretable ({counts})") in stdout
            up = _upsample(_split(generator, name)[0](z), SIZE)
            levels = np.asarray(layer["thresholds"])  # [c, K]
            if rule == "quantile":  # each unit's level t with P(a > t) = q, every concept
                want = np.quantile(up.reshape(-1, up.shape[-1]), 1 - 0.05, axis=0)
                for k in range(4):
                    np.testing.assert_allclose(levels[:, k], want, rtol=1e-5, atol=1e-6)
            assert set(layer["best_units"]) == {"circle", "square", "triangle"}
            for concept, best in layer["best_units"].items():
                k = result["concepts"].index(concept)
                masks = up > levels[:, k]  # [N, S, S, c]
                is_concept = labels == k
                inter = (masks & is_concept[..., None]).sum((0, 1, 2))
                iou = inter / np.maximum(masks.sum((0, 1, 2)) + is_concept.sum() - inter, 1)
                assert len(best["iou"]) == 3 and best["iou"] == sorted(best["iou"], reverse=True)
                # (within a pixel or two: float32 vs float64 at the threshold)
                np.testing.assert_allclose(best["iou"], iou[best["units"]], atol=0.01)
                np.testing.assert_allclose(best["iou"], np.sort(iou)[::-1][:3], atol=0.01)
                assert images_lib.read_png(os.path.join(out, f"dissect_{name}_{concept}.png")
                                           ).shape == _grid_shape(3, 2)
        assert os.path.exists(os.path.join(out, "interpretable_units.png"))
        i = result["intervention"]
        assert i["layer"] == result["best_layer"]
        head, tail = _split(generator, i["layer"])
        a = head(z_intervene)
        shows_any = False
        for concept, r in i["concepts"].items():
            units = r["units"]
            assert list(units) == ["iou", "random"] and len(units["iou"]) == 3
            assert not set(units["iou"]) & set(units["random"])
            shows = (shapes.segment(tail(a)) == result["concepts"].index(concept)).any((1, 2))
            assert r["samples_with_concept"] == shows.sum()
            assert r["ablation"]["iou"]["samples"] == shows.sum()
            assert r["insertion"]["iou"]["tries"] <= 6 * 8
            if not shows.any():
                continue
            shows_any = True
            ablated = a[shows].copy()
            ablated[..., units["iou"]] = 0
            n = int(shows.sum())
            tiles = _tiles(os.path.join(out, f"ablation_{concept}_iou.png"), 2, n)
            _assert_tiles(tiles[:n], _uint8(tail(a[shows])))
            _assert_tiles(tiles[n:], _uint8(tail(ablated)))
        assert shows_any
    quantile, iqr = (results[r]["layers"]["block1_relu"] for r in ("quantile", "iqr"))
    assert quantile["thresholds"] != iqr["thresholds"]
    assert np.ptp(np.asarray(iqr["thresholds"]), axis=1).max() > 0  # per concept


def test_dissect_bad_input_is_one_clear_line(run, tmp_path):
    for flag, message in [
            ("--segmenter=nope", "error: unknown segmenter 'nope'"),
            ("--unit_set=ace", "error: --unit_set=ace needs a differentiable segmenter")]:
        proc = _analyze("dissect", f"--workdir={run[0]}", f"--out_dir={tmp_path}",
                        "--num_dissect=4", "--num_intervene=2", flag)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert proc.stderr.strip().splitlines()[-1].startswith(message)
    options = dict(out_dir=str(tmp_path), workdir=run[0], seed=0, layers=None,
                   segmenter="shapes", quantile=0.05, num_dissect=4, num_units=2,
                   num_intervene=2, concept=None, ignore_concepts=["background"],
                   top_k=1)
    with pytest.raises(ValueError, match="unknown concept 'tree'; the segmenter's: "
                       "background, circle, square, triangle"):
        analyze_lib.run("dissect", **dict(options, concept="tree"))
    with pytest.raises(nethook.UnknownLayerError, match="unknown layer 'block7_relu' of the "
                       "generator"):
        analyze_lib.run("dissect", **dict(options, layers=["block7_relu"]))


def test_invert_a_sheet_then_draw_its_z_again(run, tmp_path):
    """invert on G's own samples (their z known), its progress and outputs, and the
    inverted.npz read back by `sample --z_file`."""
    out = str(tmp_path / "invert")
    proc = _analyze("invert", f"--workdir={run[0]}", f"--images={run[2]}", f"--out_dir={out}",
                    "--max_images=4", "--starts=2", "--inversion_steps=100")
    stdout = _ok(proc)
    assert "inverted 4/4 images" in proc.stderr and "s per image" in proc.stderr
    assert stdout.startswith("inverted 4 images: mean PSNR ")
    summary = json.load(open(os.path.join(out, "inversion.json")))
    assert [i["index"] for i in summary["images"]] == [0, 1, 2, 3]
    assert summary["mean_psnr"] > 20  # G's own samples: a z that draws them exists
    assert images_lib.read_png(os.path.join(out, "inversion.png")).shape == _grid_shape(1, 8)
    again = tmp_path / "again.npz"
    proc = run_binary("dcgan_keras.binaries.sample", f"--workdir={run[0]}",
                      f"--z_file={out}/inverted.npz", f"--out={again}", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "wrote 4 samples (z of " in proc.stdout
    inverted, drawn = np.load(os.path.join(out, "inverted.npz")), np.load(again)
    np.testing.assert_array_equal(drawn["z"], inverted["z"])
    assert np.abs(drawn["images"].astype(int) - inverted["images"]).max() <= 1
    # A walk between the inverted images: samples 0-1 and 2-3 of the sheet.
    walk_dir = str(tmp_path / "walk")
    _ok(_analyze("walk", f"--workdir={run[0]}", f"--sheet={out}/inverted.npz",
                 f"--out_dir={walk_dir}", "--steps=5", "--modes=linear"))
    walked = json.load(open(os.path.join(walk_dir, "walk.json")))
    assert (walked["num_walks"], walked["endpoints"]) == (2, "given")
    grid = images_lib.read_png(os.path.join(walk_dir, "walk_linear.png"))
    assert grid.shape == _grid_shape(2, 5)
    for row, index in ((0, 0), (0, 1), (1, 2), (1, 3)):  # each walk's first and last image
        col = 0 if index % 2 == 0 else 4
        top, left = PAD + row * (SIZE + PAD), PAD + col * (SIZE + PAD)
        tile = grid[top:top + SIZE, left:left + SIZE].astype(int)
        assert np.abs(tile - inverted["images"][index]).max() <= 1, index
    proc = run_binary("dcgan_keras.binaries.sample", f"--workdir={run[0]}", "--num=3",
                      f"--z_file={out}/inverted.npz", f"--out={again}", timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == (
        "error: --z_file gives the z to draw: leave out --num and --seed")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.png").write_bytes(b"no")
    proc = _analyze("invert", f"--workdir={run[0]}", f"--images={tmp_path / 'junk'}",
                    f"--out_dir={out}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith(
        "x.png is not an image that decodes (JPEG, PNG, GIF, BMP or WebP); remove it or "
        "convert it")
