"""The paint page's HTTP server: standard library only (http.server, one thread per request).

    GET  /              the page (static/index.html)
    GET  /paint.js      its script
    GET  /api/info      sizes, dissected layers, their concepts with units and IoU
    POST /api/edit      a request {"seed" or "z", "layer", "edits": [{"concept", "mode",
                        "region"}]} -> the images, the complete record and the shares
                        (edits.Painter.edit)
    POST /api/invert    {"image": base64 of an image file} -> its z and reconstruction
                        (edits.Painter.invert); at most MAX_UPLOAD bytes, and
                        edits.MAX_UPLOAD_PIXELS decoded pixels

Bad requests get a 4xx status with {"error": message}; the server keeps serving.

Other pages in the same browser cannot use it: a request whose Host header is not the
address served is refused (421; against DNS rebinding, where a hostile name resolves to
127.0.0.1), a POST from another origin is refused (403; the Origin header, which browsers
send with every cross-origin POST, must be this server's), and a POST must be
application/json (415), which a plain HTML form cannot send. No CORS header is ever sent.
A server bound to every address (--host=0.0.0.0) takes any Host: its user chose to be
reached by any name.
"""
import http.server
import json
import os
import sys

from dcgan_keras.analysis.dissect.paint import edits

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
FILES = {"/": ("index.html", "text/html; charset=utf-8"),
         "/index.html": ("index.html", "text/html; charset=utf-8"),
         "/paint.js": ("paint.js", "text/javascript; charset=utf-8")}
MAX_BODY = 1 << 20  # bytes; a 256x256 mask is 66 kB
MAX_UPLOAD = 16 << 20  # bytes of an /api/invert request (the image's base64)
ROUTES = {"/api/edit": ("edit", MAX_BODY), "/api/invert": ("invert", MAX_UPLOAD)}


class Handler(http.server.BaseHTTPRequestHandler):
    """Routes the requests to the server's `painter` (an edits.Painter)."""

    server_version = "dcgan-paint"
    quiet = True

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        if not self.server.quiet:
            super().log_message(format, *args)

    def _send(self, status, body, content_type="application/json"):
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status, message):
        self._send(status, {"error": message})

    def _refused(self, post=False):
        """Sends the refusal of a request from elsewhere (see the module doc); True if sent."""
        hosts = self.server.allowed_hosts()
        if hosts is not None and self.headers.get("Host", "") not in hosts:
            self._error(421, f"Host {self.headers.get('Host', '')!r} is not this server's "
                             f"address; open {self.server.url}")
            return True
        if not post:
            return False
        origin = self.headers.get("Origin")
        if origin is not None and (hosts is None and not origin.startswith("http://") or
                                   hosts is not None and origin not in
                                   {f"http://{h}" for h in hosts}):
            self._error(403, f"a POST from {origin} is refused: only this server's own page "
                             "may edit")
            return True
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            self._error(415, f"a POST must be application/json, got {content_type or 'none'}")
            return True
        return False

    def do_GET(self):  # noqa: N802 (http.server's name)
        if self._refused():
            return None
        path = self.path.split("?", 1)[0]
        if path == "/api/info":
            return self._send(200, self.server.painter.info())
        if path not in FILES:
            return self._error(404, f"no page {path}; the page is at /")
        name, content_type = FILES[path]
        with open(os.path.join(STATIC, name), "rb") as f:
            return self._send(200, f.read(), content_type)

    def do_POST(self):  # noqa: N802
        if self._refused(post=True):
            return None
        if self.path not in ROUTES:
            return self._error(404, f"no API {self.path}; POST {' or '.join(ROUTES)}")
        method, limit = ROUTES[self.path]
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return self._error(411, "a POST needs a Content-Length")
        if not 0 <= length <= limit:
            return self._error(413, f"the body is {length} bytes; at most {limit}")
        try:
            request = json.loads(self.rfile.read(length))
        except (ValueError, UnicodeDecodeError) as e:
            return self._error(400, f"the body is not JSON: {e}")
        try:
            return self._send(200, getattr(self.server.painter, method)(request))
        except edits.PaintError as e:
            return self._error(400, str(e))
        except Exception as e:  # noqa: BLE001 (one broken request must not stop the page)
            print(f"paint: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            return self._error(500, f"{type(e).__name__}: {e}")


class PaintServer(http.server.ThreadingHTTPServer):
    """A ThreadingHTTPServer holding the painter (set it before serving)."""

    daemon_threads = True

    def __init__(self, address, painter=None, quiet=True):
        super().__init__(address, Handler)
        self.painter, self.quiet = painter, quiet

    @property
    def url(self):
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def allowed_hosts(self):
        """The Host headers that name this server (None: any, when bound to every
        address): host:port, and localhost:port on the loopback address."""
        host, port = self.server_address[:2]
        if host in ("0.0.0.0", "::"):
            return None
        hosts = {f"{host}:{port}"}
        if host.startswith("127.") or host == "::1":
            hosts.add(f"localhost:{port}")
        return hosts


def bind(host="127.0.0.1", port=8000, painter=None, quiet=True):
    """A PaintServer bound to (host, port) (0: a free port); raises ValueError when the port
    cannot be taken."""
    try:
        return PaintServer((host, port), painter, quiet)
    except OSError as e:
        raise ValueError(f"cannot serve on {host}:{port}: {e.strerror or e}; pick another "
                         "--port (or stop what uses it)") from None
