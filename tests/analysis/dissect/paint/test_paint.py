"""The paint server's API over HTTP (conftest.paint_server: unit 0 of "feat" draws the
circle): edits change only the painted cells' reach, remove lowers and add raises the
concept's share, records replay bit-exactly, bad requests get a 4xx and concurrent requests
get what they would alone; and the library's region rules and dissection checks."""
import base64
import concurrent.futures
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from dcgan_keras.analysis import invert, nethook
from dcgan_keras.analysis.dissect.paint import edits, launch

PAINT_SIZE, PAINT_GRID = 32, 8  # conftest.paint_server's image and layer sides
BOX = [8, 4, 20, 12]  # x 8..20, y 4..12: cell columns 2-4, rows 1-2


def _call(url, path="api/edit", body=None, raw=None):
    """(status, JSON answer) of a GET (no body) or POST."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url + path, data=data, method="GET" if data is None
                                     else "POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _edit(url, seed, *edit_list):
    status, answer = _call(url, body={"seed": seed, "edits": [
        {"concept": c, "mode": m, "region": r} for c, m, r in edit_list]})
    assert status == 200, answer
    return answer


def _png(text):
    return tf.io.decode_png(base64.b64decode(text)).numpy()


def _box_mask(box):
    mask = np.zeros([PAINT_SIZE, PAINT_SIZE], bool)
    mask[box[1]:box[3], box[0]:box[2]] = True
    return mask


def _circle_share(image, mask, painter):
    labels = painter.segmenter(image[None])[0]
    return float(np.mean(labels[mask] == painter.segmenter.concepts.index("circle")))


def test_region_rules():
    mask = np.zeros([8, 8], bool)
    mask[0:2, 0:1] = True  # half of cell (0, 0) of a 4x4 layer: counts
    mask[4, 4] = True  # a quarter of cell (2, 2): does not
    cells = edits.region_cells(mask, 4)
    assert cells.tolist() == [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert edits.region_cells(np.ones([8, 8], bool), 8).all()  # pixel-sized cells
    rows = edits.mask_rows(mask)
    np.testing.assert_array_equal(edits.parse_region({"mask": rows}, 8), mask)
    np.testing.assert_array_equal(edits.parse_region({"box": [1, 2, 3, 8]}, 8)[:, 1],
                                  [0, 0, 1, 1, 1, 1, 1, 1])
    with pytest.raises(edits.PaintError, match="covers no cell of the 4x4 layer"):
        edits.region_cells(mask & ~_box_mask([0, 0, 1, 2])[:8, :8], 4)
    for bad in ({"box": [0, 0, 9, 4]}, {"box": [4, 0, 4, 4]}, {"mask": rows[:7]},
                {"mask": ["2" * 8] * 8}, {"circle": 1}, [0, 0, 4, 4]):
        with pytest.raises(edits.PaintError, match="region"):
            edits.parse_region(bad, 8)


def test_page_and_info(paint_server):
    url = paint_server.url
    with urllib.request.urlopen(url, timeout=30) as page:
        html = page.read().decode()
    assert 'id="paint"' in html and "paint.js" in html and "http" not in html.split(
        "<body>")[1]  # nothing fetched from elsewhere
    with urllib.request.urlopen(url + "paint.js", timeout=30) as script:
        assert "/api/edit" in script.read().decode()
    status, info = _call(url, "api/info")
    assert status == 200 and info["image_size"] == PAINT_SIZE
    feat = info["layers"]["feat"]
    assert feat["grid"] == PAINT_GRID and info["default_layer"] == "feat"
    circle, = [c for c in feat["concepts"] if c["name"] == "circle"]
    assert circle["units"] == [0] and circle["iou"][0] > 0.5  # the planted painter


def _seed_with_circle(url, painter, mask, low=0.1):
    for seed in range(40):
        image = _png(_edit(url, seed)["original"])
        if _circle_share(image, mask, painter) > low:
            return seed
    raise AssertionError("no seed draws a circle in the box")


def test_edit_changes_only_the_painted_cells(paint_server):
    url, painter = paint_server.url, paint_server.painter
    mask = _box_mask(BOX)
    seed = _seed_with_circle(url, painter, mask)
    answer = _edit(url, seed, ("circle", "remove", {"box": BOX}))
    expected_cells = np.zeros([PAINT_GRID, PAINT_GRID], int)
    expected_cells[1:3, 2:5] = 1
    assert answer["cells"] == expected_cells.tolist()  # at the layer's resolution
    original, edited = _png(answer["original"]), _png(answer["image"])
    np.testing.assert_array_equal(original, _png(_edit(url, seed)["original"]))
    changed = (original != edited).any(-1)
    # What the edited cells can reach: the upsampling (linear) of an indicator of the cells.
    indicator = np.zeros([1, PAINT_GRID, PAINT_GRID, 4], np.float32)
    indicator[0, expected_cells.astype(bool)] = 1.0
    reach = np.asarray(painter.generator.get_layer("up")(indicator))[0].any(-1)
    assert changed.any() and not (changed & ~reach).any()
    assert reach.sum() < PAINT_SIZE * PAINT_SIZE / 2  # and the reach is local
    # The shares the server reports are the segmenter's, inside the painted pixels.
    share, = answer["shares"]
    assert share["before"] == pytest.approx(_circle_share(original, mask, painter))
    assert share["after"] == pytest.approx(_circle_share(edited, mask, painter))


def test_remove_lowers_and_add_raises_the_share(paint_server):
    url = paint_server.url
    removed, added = [], []
    for seed in range(12):
        removed.append(_edit(url, seed, ("circle", "remove", {"box": BOX}))["shares"][0])
        added.append(_edit(url, seed, ("circle", "add", {"box": BOX}))["shares"][0])
    assert all(s["after"] <= s["before"] for s in removed)
    assert sum(s["after"] < s["before"] for s in removed) >= 3  # seeds with a circle there
    assert all(s["after"] >= s["before"] for s in added)
    assert np.mean([s["after"] for s in added]) > np.mean([s["before"] for s in added]) + 0.3


def test_the_record_replays_to_the_same_image(paint_server):
    url, painter = paint_server.url, paint_server.painter
    stroke = ["0" * PAINT_SIZE] * 10 + ["0" * 4 + "1" * 20 + "0" * 8] * 12 + [
        "0" * PAINT_SIZE] * 10
    answer = _edit(url, 5, ("circle", "add", {"mask": stroke}),
                   ("circle", "remove", {"box": [0, 0, 16, 16]}))
    record = json.loads(json.dumps(answer["record"]))  # what the page downloads
    assert record["seed"] == 5 and record["layer"] == "feat"
    assert [(e["mode"], e["units"]) for e in record["edits"]] == [("add", [0]),
                                                                  ("remove", [0])]
    # "add" writes unit 0's mean activation where circles are (the paper's insertion).
    means = paint_server.dissection["layers"]["feat"]["conditional_mean"]["circle"]
    assert record["edits"][0]["values"] == [pytest.approx(means[0])]
    assert means[0] > 0.1
    image = edits.replay(painter.generator, record)
    np.testing.assert_array_equal(image, _png(answer["image"]))
    assert not np.array_equal(image, _png(answer["original"]))
    with pytest.raises(edits.PaintError, match="edit 0: an add edit needs one finite value"):
        edits.replay(painter.generator, dict(record, edits=[dict(record["edits"][0],
                                                                 values=[])]))
    with pytest.raises(nethook.UnknownLayerError):
        edits.replay(painter.generator, dict(record, layer="nope"))


def test_bad_requests_get_a_4xx_and_the_server_keeps_serving(paint_server):
    url = paint_server.url
    good = {"seed": 1, "edits": [{"concept": "circle", "mode": "add", "region": {"box": BOX}}]}
    bad = [
        (dict(good, edits=[dict(good["edits"][0], concept="tree")]), "unknown concept 'tree'"),
        (dict(good, edits=[dict(good["edits"][0], region={"box": [0, 0, 40, 8]})]),
         "region box must be"),
        (dict(good, edits=[dict(good["edits"][0], region={"mask": ["1" * 8] * 8})]),
         "region mask must be 32 strings of 32"),
        (dict(good, edits=[dict(good["edits"][0], region={"box": [0, 0, 1, 1]})]),
         "covers no cell of the 8x8 layer"),
        (dict(good, edits=[dict(good["edits"][0], mode="blur")]), "mode must be one of"),
        (dict(good, seed=-1), "seed must be an integer"),
        (dict(good, layer="block9"), "unknown layer 'block9'"),
        ([1, 2], "must be a JSON object"),
    ]
    for body, message in bad:
        status, answer = _call(url, body=body)
        assert status == 400 and message in answer["error"], (body, answer)
    status, answer = _call(url, raw=b"{not json")
    assert status == 400 and "not JSON" in answer["error"]
    status, answer = _call(url, "api/nothing")
    assert status == 404
    status, answer = _call(url, body=good)
    assert status == 200 and answer["shares"][0]["concept"] == "circle"


def test_concurrent_requests_get_what_they_would_alone(paint_server):
    url = paint_server.url
    bodies = [{"seed": s, "edits": [{"concept": "circle", "mode": ("add", "remove")[s % 2],
                                     "region": {"box": [4 * (s % 4), 0, 16 + 4 * (s % 4), 16]}}]}
              for s in range(16)]
    alone = [_call(url, body=b)[1] for b in bodies]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda b: _call(url, body=b)[1], bodies * 2))
    for i, answer in enumerate(together):
        assert answer["image"] == alone[i % 16]["image"]
        assert answer["shares"] == alone[i % 16]["shares"]


def test_dissection_of_another_model_is_refused(paint_server, tmp_path):
    painter = paint_server.painter
    g, segmenter = painter.generator, painter.segmenter
    result = {"format": 2, "concepts": list(segmenter.concepts), "generator_fingerprint":
              launch.fingerprint(g), "layers": {"feat": {
                  "activation_shape": [PAINT_GRID, PAINT_GRID, 4], "thresholds": [1.0] * 4}}}
    launch.check_dissection(result, g, segmenter, "d")  # this model's: accepted
    for change, message in (
            ({"generator_fingerprint": "0" * 16}, "d is the dissection of another model "
             r"\(generator weights 0000000000000000"),
            ({"concepts": ["sky"]}, "names the concepts"),
            ({"layers": {"feat": {"activation_shape": [4, 4, 4], "thresholds": [1.0] * 4}}},
             "its layer feat is"),
            ({"layers": {"block3_relu": {}}}, "its layer block3_relu is None"),
            ({"format": None}, "d was written by an older version of analyze dissect")):
        with pytest.raises(ValueError, match=message):
            launch.check_dissection(dict(result, **change), g, segmenter, "d")
    with pytest.raises(FileNotFoundError, match="has no dissect.json"):
        launch.load_dissection(str(tmp_path), g, segmenter)


def _raw(url, method="GET", path="api/info", headers=(), body=None, length=None):
    """(status, JSON answer) with the exact headers given (http.client sets Host itself
    unless told; urllib would add its own)."""
    import http.client
    host, port = url.split("//")[1].rstrip("/").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.putrequest(method, "/" + path, skip_host=True, skip_accept_encoding=True)
    for name, value in headers:
        connection.putheader(name, value)
    data = json.dumps(body).encode() if body is not None else b""
    if method == "POST":
        connection.putheader("Content-Length", str(len(data) if length is None else length))
    connection.endheaders(data)
    response = connection.getresponse()
    answer = response.read()
    connection.close()
    return response.status, json.loads(answer) if answer.startswith(b"{") else answer


def test_requests_from_elsewhere_are_refused_over_http(paint_server):
    url = paint_server.url
    own = url.split("//")[1].rstrip("/")  # 127.0.0.1:PORT
    port = own.split(":")[1]
    good = {"seed": 1, "edits": [{"concept": "circle", "mode": "add", "region": {"box": BOX}}]}
    json_type = ("Content-Type", "application/json")
    # The page's own requests, by either loopback name.
    for host in (own, f"localhost:{port}"):
        assert _raw(url, headers=[("Host", host)])[0] == 200
        status, _ = _raw(url, "POST", "api/edit", [("Host", host), json_type,
                                                   ("Origin", f"http://{host}")], good)
        assert status == 200
    # DNS rebinding: a hostile name that resolves here.
    status, answer = _raw(url, headers=[("Host", f"evil.example:{port}")])
    assert status == 421 and "is not this server's address" in answer["error"]
    assert _raw(url, headers=[])[0] == 421  # no Host at all
    # Another origin's page posting here.
    status, answer = _raw(url, "POST", "api/edit", [("Host", own), json_type,
                                                    ("Origin", "http://evil.example")], good)
    assert status == 403 and "only this server's own page" in answer["error"]
    # A plain form's content type.
    status, answer = _raw(url, "POST", "api/edit", [("Host", own),
                                                    ("Content-Type", "text/plain")], good)
    assert status == 415 and "must be application/json, got text/plain" in answer["error"]
    # A non-browser client (no Origin) with JSON still works, and the server kept serving.
    assert _raw(url, "POST", "api/edit", [("Host", own), json_type], good)[0] == 200


def test_a_server_on_every_address_takes_any_host():
    from dcgan_keras.analysis.dissect.paint import server
    httpd = server.bind("0.0.0.0", 0)
    try:
        assert httpd.allowed_hosts() is None
    finally:
        httpd.server_close()
    httpd = server.bind("127.0.0.1", 0)
    try:
        port = httpd.server_address[1]
        assert httpd.allowed_hosts() == {f"127.0.0.1:{port}", f"localhost:{port}"}
    finally:
        httpd.server_close()


def _png_bytes(array):
    import io
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_real_image_is_inverted_then_edited_and_its_record_replays(paint_server):
    url, painter = paint_server.url, paint_server.painter
    generator = painter.generator
    z_true = np.random.default_rng(3).standard_normal([1, 8]).astype(np.float32)
    picture = np.asarray(tf.cast(tf.round((generator(z_true) + 1) * 127.5), tf.uint8))[0]
    upload = base64.b64encode(_png_bytes(picture)).decode()
    status, answer = _call(url, "api/invert", {"image": "data:image/png;base64," + upload})
    assert status == 200, answer
    assert len(answer["z"]) == 8
    np.testing.assert_array_equal(_png(answer["original"]), picture)
    reconstruction = _png(answer["image"])
    to_unit = lambda a: np.asarray(a, np.float64) / 127.5 - 1  # noqa: E731
    assert answer["psnr"] == pytest.approx(
        float(invert.psnr(to_unit(reconstruction)[None], to_unit(picture)[None])[0]), abs=0.5)
    # The optimisation beats the prior: better than most random z (the toy's ReLU dead
    # zones keep it from an exact fit; tests/analysis/test_invert.py measures that).
    random_z = np.random.default_rng(4).standard_normal([16, 8]).astype(np.float32)
    random_psnr = invert.psnr(np.asarray(generator(random_z)), to_unit(picture)[None])
    assert answer["psnr"] > np.median(random_psnr) + 1, (answer["psnr"], random_psnr)
    edit = {"concept": "circle", "mode": "add", "region": {"box": BOX}}
    status, edited = _call(url, body={"z": answer["z"], "edits": [edit]})
    assert status == 200, edited
    assert edited["record"]["z"] == answer["z"] and "seed" not in edited["record"]
    np.testing.assert_array_equal(_png(edited["original"]), reconstruction)
    replayed = edits.replay(generator, json.loads(json.dumps(edited["record"])))
    np.testing.assert_array_equal(replayed, _png(edited["image"]))
    assert edited["shares"][0]["after"] > edited["shares"][0]["before"]
    status, bad = _call(url, body={"z": answer["z"][:3], "edits": [edit]})
    assert status == 400 and "z must be a list of 8 finite numbers" in bad["error"]


def test_uploads_are_capped_and_checked(paint_server):
    from PIL import Image
    import io
    url = paint_server.url
    own = url.split("//")[1].rstrip("/")
    json_type = ("Content-Type", "application/json")
    status, answer = _raw(url, "POST", "api/invert", [("Host", own), json_type],
                          length=(16 << 20) + 1)
    assert status == 413 and "at most 16777216" in answer["error"]
    buffer = io.BytesIO()
    Image.new("L", (5000, 4000)).save(buffer, format="PNG")  # small file, 20 Mpixels
    huge = base64.b64encode(buffer.getvalue()).decode()
    for body, code, message in [
            ({"image": huge}, 400, "the image is 5000x4000: at most 16777216 pixels"),
            ({"image": base64.b64encode(b"plain text, no picture").decode()}, 400,
             "the upload is not an image"),
            ({"image": "***"}, 400, "image is not base64 text"),
            ({"picture": "x"}, 400, 'the request must be {"image"')]:
        status, answer = _call(url, "api/invert", body)
        assert status == code and message in answer["error"], (body, answer)
