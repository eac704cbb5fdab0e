"""Paint with units: a local web page that adds and removes concepts in generated images by
switching dissected units on or off inside a painted region (GANPaint, Bau et al. 2019,
after GAN Dissection, arXiv:1811.10597, section 3.2 and its interactive demo).

    edits.py   the library: records of edits, applying them, replaying a downloaded record
    server.py  the HTTP server (standard library) and its JSON API
    static/    the page (plain HTML + JavaScript, nothing fetched from the internet)
"""
