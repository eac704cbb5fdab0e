"""The `analyze paint` verb: the generator's dissection (given, or run now), then the server.

    python -m dcgan_keras.binaries.analyze paint --workdir=W [--dissection=DIR] [--port=8000]
"""
import os
import signal
import sys
import threading

import tensorflow as tf

from dcgan_keras.analysis import nethook
from dcgan_keras.analysis.dissect import dissection
from dcgan_keras.analysis.dissect.paint import edits
from dcgan_keras.utils import files
from dcgan_keras.workdir import weights_fingerprint

DISSECT_FILE = "dissect.json"


def fingerprint(generator):
    """The generator's weights fingerprint (what dissect.json records)."""
    return weights_fingerprint(generator)


def check_dissection(result, generator, segmenter, where):
    """Raises ValueError unless `result` (a dissect.json dict) is of this generator and
    names the segmenter's concepts."""
    if result.get("format") != dissection.FORMAT:
        raise ValueError(f"{where} was written by an older version of analyze dissect (one "
                         "threshold per unit, no conditional means); dissect the model again")
    theirs, mine = result.get("generator_fingerprint"), fingerprint(generator)
    if theirs is not None and theirs != mine:
        raise ValueError(f"{where} is the dissection of another model (generator weights "
                         f"{theirs}, this one's {mine}); dissect this model or leave "
                         "--dissection out to dissect it now")
    if list(result.get("concepts", [])) != list(segmenter.concepts):
        raise ValueError(f"{where} names the concepts {result.get('concepts')}, the segmenter "
                         f"{list(segmenter.concepts)}; pass the --segmenter it was made with")
    if not result.get("layers"):
        raise ValueError(f"{where} has no dissected layer")
    valid = nethook.spatial_layer_names(generator)
    for name, layer in result["layers"].items():
        shape = list(generator.get_layer(name).output.shape[1:]) if name in valid else None
        if (shape is None or shape != layer.get("activation_shape")
                or len(layer.get("thresholds", [])) != shape[-1]):
            raise ValueError(f"{where} is the dissection of another model: its layer {name} "
                             f"is {layer.get('activation_shape')}, this generator's is "
                             f"{shape or 'missing'}")


def load_dissection(directory, generator, segmenter):
    """dissect.json of `directory` (an `analyze dissect --out_dir`), checked against G."""
    path = os.path.join(directory, DISSECT_FILE)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{directory} has no {DISSECT_FILE}: give the --out_dir of an "
                                "`analyze dissect` run of this model, or leave --dissection "
                                "out to dissect it now")
    result = files.read_json(path)
    check_dissection(result, generator, segmenter, directory)
    return result


def dissection_for(generator, segmenter, directory, z, layers, reuse=True, **kwargs):
    """The dissection in `directory` when it is this generator's (and `reuse`), else a new
    one (no intervention) written there; kwargs go to dissection.run."""
    path = os.path.join(directory, DISSECT_FILE)
    if reuse and tf.io.gfile.exists(path):
        result = files.read_json(path)
        try:
            check_dissection(result, generator, segmenter, directory)
            wanted = (kwargs.get("threshold", "iqr"), kwargs.get("units", "iou"))
            has = (result.get("threshold"), "ace" if any(
                layer.get("ace_units") for layer in result["layers"].values()) else "iou")
            if set(layers) <= set(result["layers"]) and (wanted == has or wanted[1] == "iou"
                                                         and wanted[0] == has[0]):
                _say(f"using the dissection in {directory}")
                return result
        except ValueError as e:
            _say(f"not reusing {directory}: {e}")
    _say(f"dissecting {', '.join(layers)} on {len(z)} samples into {directory}")
    return dissection.run(generator, segmenter, directory, z, layers,
                          progress=lambda line: _say(f"dissect {line}"), **kwargs)


def _say(line):
    print(f"paint: {line}", file=sys.stderr, flush=True)


def warm_up(painter, seed):
    """Traces the model's functions once (the first real request is then fast)."""
    concept = painter.layers[painter.default_layer][0]["name"]
    size = painter.size
    for mode in edits.MODES:
        painter.edit({"seed": seed, "edits": [{"concept": concept, "mode": mode,
                                               "region": {"box": [0, 0, size, size]}}]})


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def serve(httpd, painter, seed=0):
    """Serves the page until Ctrl-C (SIGINT) or SIGTERM; returns a summary line.

    Both signals stop the server even where the process was started with SIGINT ignored
    (as a shell does for a command it runs in the background)."""
    httpd.painter = painter
    warm_up(painter, seed)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGINT, signal.SIGTERM):
            previous[number] = signal.signal(number, _interrupt)
    print(f"paint: serving {httpd.url} (Ctrl-C to stop)", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
        for number, handler in previous.items():
            signal.signal(number, handler)
    return f"paint: stopped serving {httpd.url}"
