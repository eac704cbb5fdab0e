"""The paint page in a real browser (headless Chromium through chromedriver): it loads, a
concept is picked, strokes are painted with pointer events, the shown image changes and the
measured share moves the right way; undo and reset work; an image of the user's is opened,
inverted and painted on. (The README's screenshot is of a trained model:
tools/paint_screenshot.py.)"""
import numpy as np
import pytest
import tensorflow as tf
from webdriver import Browser, find_chromium, installable

DISPLAY = 384  # the page's view side, CSS pixels


@pytest.fixture(scope="module")
def browser():
    chromium, driver = find_chromium()
    if chromium is None:
        pytest.skip(driver + ("" if installable() else "; not installable here (needs root "
                              "and apt-get)"))
    with Browser(chromium, driver) as b:
        yield b


def _circle_centre(painter, seed):
    """(x, y) image pixels of the centre of the largest circle area of the seed's image, and
    its pixel count."""
    answer = painter.edit({"seed": seed, "edits": []})
    image = tf.io.decode_png(tf.io.decode_base64(
        answer["original"].replace("+", "-").replace("/", "_"))).numpy()
    circle = painter.segmenter(image[None])[0] == painter.segmenter.concepts.index("circle")
    ys, xs = np.nonzero(circle)
    return (float(xs.mean()), float(ys.mean())) if len(xs) else None, len(xs)


def _stroke(x, y, size, length=4):
    """A horizontal stroke through image pixel (x, y), in CSS pixels from the canvas centre."""
    scale = DISPLAY / size
    return [((x + dx + 0.5) * scale - DISPLAY / 2, (y + 0.5) * scale - DISPLAY / 2)
            for dx in np.linspace(-length, length, 9)]


def _state(b):
    return b.run("""const q = (id) => document.getElementById(id);
        return {edits: document.body.dataset.edits, seed: q('seed').value,
                edited: q('edited').src, original: q('original').src,
                before: q('share-before').dataset.value, after: q('share-after').dataset.value,
                status: q('status').textContent};""")


def test_paint_in_a_browser(browser, paint_server, tmp_path):
    painter, size = paint_server.painter, paint_server.painter.size
    seed = max(range(1, 30), key=lambda s: _circle_centre(painter, s)[1])  # a big circle
    (cx, cy), pixels = _circle_centre(painter, seed)
    assert pixels > 20
    b = browser
    b.get(paint_server.url)
    b.wait_for("return document.body.dataset.ready === '1';")
    assert b.run("return document.querySelectorAll('#concepts li').length;") == 3
    assert "circle" in b.run("return document.getElementById('concepts').textContent;")
    first = _state(b)
    assert first["seed"] == "0" and first["edits"] == "0"
    b.click("#next")  # the seed buttons
    b.wait_for("return document.getElementById('seed').value === '1' && "
               "document.body.dataset.edits === '0';")
    assert _state(b)["original"] != first["original"]
    b.run(f"const s = document.getElementById('seed'); s.value = {seed};"
          "s.dispatchEvent(new Event('change'));")
    b.wait_for(f"return document.getElementById('seed').value === '{seed}';")
    b.wait_for("return document.getElementById('status').textContent.startsWith('seed "
               f"{seed}');")
    start = _state(b)
    assert start["edited"] == start["original"]

    # Remove: paint across the circle.
    b.click('input[name="concept"][value="circle"]')
    b.click("#mode-remove")
    b.drag("#paint", _stroke(cx, cy, size))
    b.wait_for("return document.body.dataset.edits === '1';")
    removed = _state(b)
    assert removed["edited"] != start["edited"] and removed["original"] == start["original"]
    assert float(removed["after"]) < float(removed["before"]), removed

    # Add: paint where there is no circle (the far corner from it).
    far = (size * 0.2 if cx > size / 2 else size * 0.8, size * 0.2 if cy > size / 2 else
           size * 0.8)
    b.click("#mode-add")
    b.drag("#paint", _stroke(*far, size, length=3))
    b.wait_for("return document.body.dataset.edits === '2';")
    added = _state(b)
    assert added["edited"] != removed["edited"]
    assert float(added["after"]) > float(added["before"]), added
    png = b.screenshot()
    path = tmp_path / "paint.png"
    path.write_bytes(png)
    height, width = tf.io.decode_png(png).shape[:2]
    assert width == 1280 and height > 500  # the window less its (headless) frame

    b.click("#undo")
    b.wait_for("return document.body.dataset.edits === '1';")
    assert _state(b)["edited"] == removed["edited"]
    b.click("#reset")
    b.wait_for("return document.body.dataset.edits === '0';")
    reset = _state(b)
    assert reset["edited"] == reset["original"] == start["original"]
    # The downloads: the PNG is the shown image; the JSON link is a blob of the record.
    assert b.run("return document.getElementById('download-png').href;") == reset["edited"]
    assert b.run("return document.getElementById('download-json').href;").startswith("blob:")


def test_open_an_image_and_paint_on_it(browser, paint_server, tmp_path):
    painter, size = paint_server.painter, paint_server.painter.size
    z = np.random.default_rng(5).standard_normal([1, 8]).astype(np.float32)
    picture = tf.cast(tf.round((painter.generator(z) + 1) * 127.5), tf.uint8)[0]
    path = tmp_path / "my_picture.png"
    path.write_bytes(tf.io.encode_png(picture).numpy())
    b = browser
    b.get(paint_server.url)
    b.wait_for("return document.body.dataset.ready === '1';")
    b.upload("#upload", path)
    b.wait_for("return document.getElementById('status').textContent.startsWith("
               "'your image my_picture, 0 edit(s)');", timeout=120)
    opened = _state(b)
    shown = tf.io.decode_png(tf.io.decode_base64(opened["original"].split(",")[1].replace(
        "+", "-").replace("/", "_"))).numpy()
    assert shown.shape == (size, size, 3)  # G(z) of the inverted z, as the page edits it
    assert float(b.run("return document.body.dataset.psnr;")) > 10
    b.click('input[name="concept"][value="circle"]')
    b.click("#mode-add")
    b.drag("#paint", _stroke(size * 0.5, size * 0.5, size, length=3))
    b.wait_for("return document.body.dataset.edits === '1';")
    added = _state(b)
    assert added["edited"] != added["original"] and added["original"] == opened["original"]
    assert float(added["after"]) >= float(added["before"]), added
    assert b.run("return document.getElementById('download-json').download;") == (
        "paint_my_picture.json")
    assert b.run("return document.getElementById('seed').value;") == "0"  # untouched
