"""A headless Chromium that tests drive through the DevTools protocol, for the ``--report`` pages.

The browser comes from ``scripts/get_chromium.sh`` (Debian's package unpacked into a cache folder, or a
``chromium`` on PATH). It is driven over ``--remote-debugging-pipe``: JSON messages ending in a NUL byte
on file descriptors 3 (to the browser) and 4 (from it), so no websocket library and no port are needed.
Console messages and uncaught exceptions of the page are collected as they arrive.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
GET_CHROMIUM = REPO_ROOT / "scripts" / "get_chromium.sh"


def find_chromium() -> tuple[str | None, str]:
    """The command that starts Chromium, installing it once with ``scripts/get_chromium.sh`` where absent.

    Returns:
        tuple[str or None, str]: the command, or ``None`` and why it could not be had.
    """
    if shutil.which("bash") is None:
        return None, "bash is needed to run scripts/get_chromium.sh"
    try:
        done = subprocess.run(
            ["bash", str(GET_CHROMIUM)], capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        return None, "scripts/get_chromium.sh took over 15 minutes"
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        why = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"scripts/get_chromium.sh could not install Chromium ({why})"
    return lines[-1], ""


def _high(fds: tuple[int, int]) -> tuple[int, int]:
    """The pipe's ends moved to descriptors of 10 and above, so that placing them at 3 and 4 in the child
    never overwrites one with the other."""
    import fcntl

    moved = tuple(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds)
    for fd in fds:
        os.close(fd)
    return moved


class Browser:
    """One headless Chromium process and one page in it.

    Args:
        command (str): what :func:`find_chromium` returned.
        width (int, optional): the window's width in pixels. Default: ``1280``.
        height (int, optional): its height. Default: ``900``.
    """

    def __init__(self, command: str, *, width: int = 1280, height: int = 900):
        self._profile = tempfile.mkdtemp(prefix="audiosiam-chromium-")
        self._log = Path(self._profile + ".log")
        to_browser_read, self._to_browser = _high(os.pipe())
        self._from_browser, from_browser_write = _high(os.pipe())

        # The protocol's fixed descriptors 3 and 4, placed by bash (dash takes one-digit descriptors only;
        # no preexec_fn: it is unsafe with threads).
        with open(self._log, "wb") as log:  # the child keeps its copy; read back if it dies
            self._process = subprocess.Popen(
                [
                    shutil.which("bash") or "bash",
                    "-c",
                    f'exec "$0" "$@" 3<&{to_browser_read} 4>&{from_browser_write}',
                    command,
                    "--headless",
                    "--no-sandbox",  # tests often run as root, where the sandbox refuses to start
                    "--disable-gpu",
                    "--no-first-run",
                    "--mute-audio",
                    "--autoplay-policy=no-user-gesture-required",  # play buttons pressed by a script
                    "--remote-debugging-pipe",
                    f"--user-data-dir={self._profile}",
                    f"--window-size={width},{height}",
                    "about:blank",
                ],
                pass_fds=(to_browser_read, from_browser_write),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._buffer = b""
        self._next_id = 0
        self.console: list[dict] = []  # {"level", "text"} of every console message and uncaught error
        targets = self.send("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self._session = self.send("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=True)

    def send(self, method: str, *, session: bool = False, timeout: float = 60.0, **params) -> dict:
        """Send one command and wait for its answer (events that arrive meanwhile are recorded).

        Args:
            method (str): e.g. ``"Page.navigate"``.
            session (bool, optional): to the page rather than the browser. Default: ``False``.
            timeout (float, optional): seconds to wait. Default: ``60.0``.
            **params: the command's parameters.

        Returns:
            dict: the command's result.
        """
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive(timeout)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def _receive(self, timeout: float) -> dict:
        import select

        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                said = self._log.read_text(errors="replace").strip().splitlines()[-5:]
                raise RuntimeError("Chromium closed the protocol pipe (it exited): " + " | ".join(said))
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message = json.loads(raw)
        self._record(message)
        return message

    def _record(self, message: dict) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.console.append({"level": params.get("type"), "text": text})
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text", "")
            self.console.append({"level": "error", "text": text})
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            self.console.append({"level": entry.get("level"), "text": entry.get("text", "")})

    def open(self, path: str | os.PathLike, *, settle: float = 0.5) -> None:
        """Load a file and wait for its load event, then ``settle`` seconds for media to read metadata."""
        self.send("Page.navigate", session=True, url=Path(path).resolve().as_uri())
        deadline = time.monotonic() + 60
        while self.evaluate("document.readyState") != "complete":
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path} did not finish loading")
            time.sleep(0.05)
        time.sleep(settle)

    def evaluate(self, expression: str, *, await_promise: bool = False):
        """The JSON value of a JavaScript expression in the page; a thrown error is a ``RuntimeError``."""
        result = self.send(
            "Runtime.evaluate",
            session=True,
            expression=expression,
            returnByValue=True,
            awaitPromise=await_promise,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}...: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: str | os.PathLike, *, full_page: bool = False) -> Path:
        """Write a PNG of the page (the window, or the whole page) to ``path``."""
        params = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            size = self.send("Page.getLayoutMetrics", session=True)["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        data = self.send("Page.captureScreenshot", session=True, **params)["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)

    def errors(self) -> list[str]:
        """The texts of console errors and uncaught exceptions seen so far."""
        return [m["text"] for m in self.console if m["level"] in ("error", "assert")]

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)
        self._log.unlink(missing_ok=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
