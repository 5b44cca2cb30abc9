"""Headless Chromium over the DevTools protocol, for the browser tests (``test_browser*.py``).

Why the DevTools protocol (through the small ``websocket-client`` package)
rather than ``chromium --dump-dom``: the serialised DOM cannot tell whether an
image actually decoded, while ``Runtime.evaluate`` can read ``naturalWidth``
in the live page; the same connection takes the screenshots. A test skips,
with the reason, only when no Chromium binary is found (``make browser-deps``
installs Debian's).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import pytest

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--remote-debugging-port=0",
    "--remote-allow-origins=*",
]

# Waits for every image (lazy ones forced to load), then reports images, tracebacks and outputs.
PAGE_PROBE = """
(async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(i => { i.loading = "eager"; });
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(done => {
    i.addEventListener("load", done); i.addEventListener("error", done); setTimeout(done, 15000);
  })));
  const outputs = Array.from(document.querySelectorAll(".cell_output"));
  return JSON.stringify({
    title: document.title,
    images: imgs.map(i => ({src: i.currentSrc || i.src, width: i.naturalWidth})),
    outputs: outputs.length,
    tracebacks: document.querySelectorAll(".cell_output .traceback, .cell_output .output.error").length
      + outputs.filter(o => o.innerText.includes("Traceback (most recent call last)")).length,
  });
})()
"""


def find_chromium() -> str | None:
    """The Chromium binary: on PATH, or Debian's /usr/bin/chromium."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


class DevTools:
    """A minimal Chrome DevTools protocol client for one page (send a command, wait for an event)."""

    def __init__(self, exe: str, profile: Path, log: Path, timeout: float = 60, extra_flags: Sequence[str] = ()):
        import websocket

        self.timeout = timeout
        self.log = log
        self.proc = subprocess.Popen([exe, *FLAGS, *extra_flags, f"--user-data-dir={profile}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=log.open("wb"))
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                pytest.fail(f"Chromium did not start; its log ends with:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            pages = [t for t in json.load(resp) if t.get("type") == "page"]
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=timeout,
                                              suppress_origin=True)
        self.next_id, self.events = 0, []
        self.send("Page.enable")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": 1280, "height": 1000, "deviceScaleFactor": 1, "mobile": False})

    def send(self, method: str, params: dict | None = None) -> dict:
        """Run one command and return its result (events seen meanwhile are kept)."""
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params or {}}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, name: str) -> dict:
        """Wait for the next event ``name``."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            for i, ev in enumerate(self.events):
                if ev.get("method") == name:
                    return self.events.pop(i)
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(name)

    def visit(self, url: str) -> dict:
        """Load ``url``, wait for its images, and return the page probe (see ``PAGE_PROBE``)."""
        self.events.clear()
        self.send("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")
        result = self.send("Runtime.evaluate", {"expression": PAGE_PROBE, "awaitPromise": True,
                                                "returnByValue": True})
        return json.loads(result["result"]["value"])

    def screenshot(self, path: Path) -> Path:
        """Save a PNG of the current viewport."""
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        with_ws = getattr(self, "ws", None)
        if with_ws is not None:
            with_ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_chromium(tmp_path_factory, name: str, **options) -> DevTools:
    """A headless Chromium in its own profile folder; the test skips with the reason when there is none."""
    exe = find_chromium()
    if exe is None:
        pytest.skip("Chromium not found: install it with `make browser-deps` (Debian package chromium)")
    tmp = tmp_path_factory.mktemp(name)
    return DevTools(exe, tmp / "profile", tmp / "chromium.log", **options)
