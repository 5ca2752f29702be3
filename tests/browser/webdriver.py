"""A small W3C WebDriver client for chromedriver, on the standard library.

Just what the dashboard's browser test needs: start chromedriver and a
headless Chromium session, open a page, find elements by CSS selector,
type, click, answer confirm dialogs, run a script, and save a screenshot.
Each call raises WebDriverError with the driver's own message on failure.
"""

import base64
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

# The W3C key for an element reference in a JSON answer.
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"

# As root and on a machine without a network beyond loopback, Chromium needs
# no sandbox, no GPU, and none of the background calls to Google's hosts.
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-extensions",
    "--window-size=1440,1500", "--lang=en-US",
]


class WebDriverError(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Driver:
    """chromedriver on a free port, and one browser session in it."""

    def __init__(self, chromedriver="/usr/bin/chromedriver", chromium="/usr/bin/chromium", log=None):
        self.port = free_port()
        self.profile = tempfile.mkdtemp(prefix="rusty-db-chromium-")
        self.log = open(log or os.devnull, "w")
        self.process = subprocess.Popen([chromedriver, f"--port={self.port}"], stdout=self.log,
                                        stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}"
        self.session = None
        deadline = time.time() + 20
        while True:
            try:
                if self._call("GET", "/status").get("ready"):
                    break
            except (OSError, WebDriverError):
                pass
            if time.time() > deadline or self.process.poll() is not None:
                raise WebDriverError(f"chromedriver did not start on port {self.port}")
            time.sleep(0.1)
        capabilities = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {"binary": chromium,
                                   "args": CHROMIUM_FLAGS + [f"--user-data-dir={self.profile}"]},
        }}}
        self.session = self._call("POST", "/session", capabilities)["sessionId"]

    def _call(self, method, path, body=None, timeout=60):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                answer = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as e:
            try:
                value = json.loads(e.read()).get("value", {})
            except ValueError:
                value = {}
            raise WebDriverError(f"{method} {path}: {value.get('error', e.code)}: {value.get('message', '')}")
        return answer.get("value")

    def _session(self, method, path, body=None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def quit(self):
        try:
            if self.session:
                self._session("DELETE", "")
        except (OSError, WebDriverError):
            pass
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()

    # === pages and scripts ===

    def get(self, url):
        self._session("POST", "/url", {"url": url})

    def run(self, script, *args):
        """The value of `script` (a function body) called with `args`."""
        return self._session("POST", "/execute/sync", {"script": script, "args": list(args)})

    def screenshot(self, path):
        png = base64.b64decode(self._session("GET", "/screenshot"))
        with open(path, "wb") as f:
            f.write(png)

    # === elements ===

    def find(self, css):
        found = self._session("POST", "/element", {"using": "css selector", "value": css})
        return Element(self, found[ELEMENT])

    def find_all(self, css):
        found = self._session("POST", "/elements", {"using": "css selector", "value": css})
        return [Element(self, e[ELEMENT]) for e in found]

    def text(self, css):
        return self.find(css).text()

    # === dialogs ===

    def alert_text(self):
        return self._session("GET", "/alert/text")

    def accept_alert(self):
        self._session("POST", "/alert/accept", {})

    def dismiss_alert(self):
        self._session("POST", "/alert/dismiss", {})


class Element:
    def __init__(self, driver, ref):
        self.driver, self.ref = driver, ref

    def _call(self, method, path, body=None):
        return self.driver._session(method, f"/element/{self.ref}{path}", body)

    def text(self):
        return self._call("GET", "/text")

    def click(self):
        self._call("POST", "/click", {})

    def clear(self):
        self._call("POST", "/clear", {})

    def type(self, text):
        self._call("POST", "/value", {"text": text})

    def displayed(self):
        return self._call("GET", "/displayed")

    def attribute(self, name):
        return self._call("GET", f"/attribute/{name}")


def wait_for(what, check, timeout=15.0, every=0.1):
    """Calls `check` until it returns something truthy, and returns that;
    fails naming `what` (with the last error, if it raised) after `timeout`."""
    deadline = time.time() + timeout
    last = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = None
        except (WebDriverError, KeyError, ValueError, IndexError) as e:
            last = e
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}" +
                                 (f" (last error: {last})" if last else ""))
        time.sleep(every)
