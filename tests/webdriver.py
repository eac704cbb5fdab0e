"""A minimal W3C WebDriver client over urllib, for the browser tests (headless Chromium).

Only what the tests use: a session, navigation, elements, clicks, scripts, pointer
actions and screenshots. It talks to Debian's `chromedriver`; `find_chromium` says why a
browser test must be skipped when there is none.
"""
import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C element reference key


def find_chromium():
    """(chromium, chromedriver) paths, or (None, the reason they are missing)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    return None, ("headless Chromium is not installed (Debian: apt-get install chromium "
                  "chromium-driver, or `make browser` as root)")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebDriverError(RuntimeError):
    """An error answer of the driver."""


class Browser:
    """A headless Chromium session driven through chromedriver.

    Args:
        browser: the chromium binary.
        driver: the chromedriver binary.
        width, height: the window size (screenshots have this size).
    """

    def __init__(self, browser, driver, width=1280, height=720):
        self._profile = tempfile.mkdtemp(prefix="chromium-profile-")
        port = _free_port()
        self._driver = subprocess.Popen([driver, f"--port={port}"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        self._base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 20
        while True:
            try:
                if self._call("GET", "/status")["ready"]:
                    break
            except (OSError, WebDriverError):
                pass
            if time.time() > deadline:
                self.close()
                raise WebDriverError("chromedriver did not start within 20 s")
            time.sleep(0.1)
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", f"--user-data-dir={self._profile}",
                "--force-device-scale-factor=1"]
        try:
            answer = self._call("POST", "/session", {"capabilities": {"alwaysMatch": {
                "browserName": "chrome", "goog:chromeOptions": {"binary": browser,
                                                                "args": args}}}})
        except Exception:
            self.close()
            raise
        self._session = f"/session/{answer['sessionId']}"

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self._base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())["value"]
        except urllib.error.HTTPError as e:
            value = json.loads(e.read() or b"{}").get("value", {})
            raise WebDriverError(f"{method} {path}: {value.get('error')}: "
                                 f"{value.get('message', '')[:300]}") from None

    def _session_call(self, method, path, body=None):
        return self._call(method, self._session + path, body)

    def get(self, url):
        self._session_call("POST", "/url", {"url": url})

    def find(self, css):
        """The element reference of the first element matching `css`."""
        return self._session_call("POST", "/element", {"using": "css selector", "value": css})

    def click(self, css):
        self._session_call("POST", f"/element/{self.find(css)[ELEMENT]}/click", {})

    def upload(self, css, path):
        """Chooses the local file `path` in the file input `css` (as a user would)."""
        self._session_call("POST", f"/element/{self.find(css)[ELEMENT]}/value",
                           {"text": str(path)})

    def run(self, script, *args):
        """Runs JavaScript (a function body; `arguments` are args) and returns its value."""
        return self._session_call("POST", "/execute/sync", {"script": script,
                                                           "args": list(args)})

    def wait_for(self, script, timeout=30):
        """Polls `script` until it returns a truthy value; returns it."""
        deadline = time.time() + timeout
        while True:
            value = self.run(script)
            if value:
                return value
            if time.time() > deadline:
                status = self.run("const s = document.getElementById('status');"
                                  "return s ? s.textContent : '';")
                raise WebDriverError(f"timed out after {timeout} s waiting for: {script} "
                                     f"(the page's status: {status!r})")
            time.sleep(0.05)

    def drag(self, css, points):
        """Presses the mouse at points[0] of the element `css` (pixels from its centre),
        moves through the other points and releases: real pointer events."""
        origin = self.find(css)
        steps = [{"type": "pointerMove", "origin": origin, "x": int(points[0][0]),
                  "y": int(points[0][1]), "duration": 0}, {"type": "pointerDown", "button": 0}]
        steps += [{"type": "pointerMove", "origin": origin, "x": int(x), "y": int(y),
                   "duration": 20} for x, y in points[1:]]
        steps.append({"type": "pointerUp", "button": 0})
        self._session_call("POST", "/actions", {"actions": [{
            "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
            "actions": steps}]})

    def screenshot(self):
        """The PNG bytes of the window."""
        return base64.b64decode(self._session_call("GET", "/screenshot"))

    def close(self):
        try:
            if hasattr(self, "_session"):
                self._session_call("DELETE", "")
        except (OSError, WebDriverError):
            pass
        self._driver.terminate()
        try:
            self._driver.wait(10)
        except subprocess.TimeoutExpired:
            self._driver.kill()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def installable():
    """Whether `apt-get install chromium chromium-driver` could run here (root and apt)."""
    return shutil.which("apt-get") is not None and os.geteuid() == 0
