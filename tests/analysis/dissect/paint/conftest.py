"""The paint server on a generator whose painter is known (testutil.toy_generator: unit 0
of "feat" draws the shapes segmenter's circle), dissected and served once per session."""
import threading

import numpy as np
import pytest
from testutil import toy_generator

PAINT_SIZE, PAINT_GRID = 32, 8  # image side; the layer's side (cells of 4x4 pixels)


@pytest.fixture(scope="session")
def paint_server(tmp_path_factory):
    """A running server.PaintServer on 127.0.0.1 (its painter: edits.Painter)."""
    from dcgan_keras.analysis.dissect import dissection, segmenters
    from dcgan_keras.analysis.dissect.paint import edits, server
    generator = toy_generator(PAINT_SIZE, PAINT_GRID)
    segmenter = segmenters.load("shapes")
    z = np.random.default_rng(0).standard_normal([200, 8]).astype(np.float32)
    result = dissection.run(generator, segmenter, str(tmp_path_factory.mktemp("toy_dissect")),
                            z, ["feat"], num_units=1, num_examples=2)
    httpd = server.bind("127.0.0.1", 0, edits.Painter(generator, result, segmenter,
                                                     num_units=1))
    httpd.dissection = result
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
