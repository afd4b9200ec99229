"""The dashboard's web server (aiohttp): the page and its assets, a JSON API, and one
WebSocket per page for live updates.

- ``GET /`` the page, ``/static/*`` its script and style (all local: no CDN);
- ``GET /ws`` a WebSocket: first ``{"type": "hello", ...}`` with everything the page shows,
  then ``devices``, ``events``, ``acks``, ``tap``, ``tap_values`` and ``bench`` messages as
  things change (the platform store is polled with a read-only connection of its own);
- ``POST /api/ssr`` ``{"app", "cid", "op": "read"|"write"|"exec"|"info", "n", "v"}`` sends
  one SSR with the platform's credentials (:func:`twintap.platform.send_ssr`) and answers
  the ack: ``{"ok", "status": "WRITE 0.02", "text": <Ack.describe()>, "ack": {...}}``;
- ``POST /api/tap/{connect,disconnect,login,logout,variables,read,write,monitor}`` drive
  the shared Tap session (:mod:`twintap.dashboard.tapsession`);
- ``GET /api/state``, ``GET /api/bench``; ``GET /bench/PATH`` files of the bench directory.

The server listens on 127.0.0.1 by default. Requests that change something must be JSON
from the page's own origin (a page of another site cannot drive a board through it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import mimetypes
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from twintap import TwintapError, __version__, say
from twintap.broker import BrokerDir
from twintap.dashboard import markdown
from twintap.dashboard.storeview import StoreView, status_text
from twintap.dashboard.tapsession import TapSession
from twintap.mqttclient import Credentials
from twintap.platform import ONLINE_WINDOW, send_ssr
from twintap.proto import rpzcodes as rc

STATIC = Path(__file__).resolve().parent / "static"
EVENT_RING = 2000
ACK_RING = 200
BENCH_FILES = {".png", ".svg", ".jpg", ".jpeg", ".gif", ".csv", ".json", ".md", ".txt"}
SSR_OPS = {"read": rc.READ, "write": rc.WRITE, "exec": rc.EXEC, "info": rc.INFO}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


class BadRequest(Exception):
    """A request the API refuses with 400 and a reason."""


def _body_field(body: dict, name: str, kind: type | tuple[type, ...], required: bool = True
                ) -> Any:
    """``body[name]`` checked to be a ``kind`` (never a bool); None when optional and absent."""
    v = body.get(name)
    if v is None and not required:
        return None
    if isinstance(v, bool) or not isinstance(v, kind):
        raise BadRequest(f"'{name}' is missing or of the wrong type")
    return v


class Dashboard:
    """The dashboard server, run on an asyncio loop of its own thread.

    ``start()`` returns the READY line ``READY dashboard http://HOST:PORT`` once it listens
    (``port=0`` picks a free port); ``stop()`` closes every page's socket, the Tap session
    and the server.
    """

    def __init__(
        self,
        platform_dir: Path | str,
        broker_dir: Path | str,
        host: str = "127.0.0.1",
        port: int = 8080,
        bench_dir: Path | str = "bench",
        broker_url: str | None = None,
        tap_link: str = "tcp://127.0.0.1:2000",
        poll_s: float = 0.5,
        window: float = ONLINE_WINDOW,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.platform_dir = Path(platform_dir)
        self.broker_dir = Path(broker_dir)
        self.host = host
        self.port = port
        self.bench_dir = Path(bench_dir)
        self.broker_url = broker_url
        self.tap_link = tap_link
        self.poll_s = poll_s
        self.window = window
        self.echo = echo or say
        self.view = StoreView(self.platform_dir, window)
        self.tap = TapSession(self.publish, self.echo)
        self.devices: list[dict] = []
        self.events: deque[dict] = deque(maxlen=EVENT_RING)
        self.acks: deque[dict] = deque(maxlen=ACK_RING)
        self.store_error: str | None = None
        self.bench: dict = {"exists": False}
        self._bench_key: object = None
        self._clients: set[asyncio.Queue] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._stopping: asyncio.Event | None = None

    @property
    def url(self) -> str:
        """The page's address."""
        return f"http://{self.host}:{self.port}"

    # -- lifecycle -----------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> str:
        """Serve from a thread; returns the READY line once the socket listens."""
        self._thread = threading.Thread(target=self._main, name="dashboard", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TwintapError(f"the dashboard did not start within {timeout:g} s")
        if self._failure is not None:
            raise TwintapError(f"cannot serve the dashboard on {self.host}:{self.port}: "
                               f"{self._failure}")
        self.echo(f"[I][dashboard] platform store {self.view.path}, broker {self.broker_dir}, "
                  f"bench report {self.bench_dir / 'report.md'}")
        return f"READY dashboard {self.url}"

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and wait for the thread."""
        loop = self.loop
        if loop is not None and self._stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed meanwhile: nothing to stop
                loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.tap.close()

    def _main(self) -> None:
        """The dashboard thread: its own event loop, until :meth:`stop`."""
        loop = asyncio.new_event_loop()
        self.loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as e:  # reported by start()
            self._failure = e
            self._ready.set()
        finally:
            loop.close()

    async def _serve(self) -> None:
        """Listen, poll, and on stop close the pages' sockets and the server."""
        self._stopping = asyncio.Event()
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
            await site.start()
            self.port = runner.addresses[0][1]
            self._ready.set()
            poller = asyncio.ensure_future(self._poll_forever())
            await self._stopping.wait()
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            for q in list(self._clients):
                q.put_nowait(None)
        finally:
            await runner.cleanup()
            self.view.close()

    # -- fan-out -------------------------------------------------------------------------
    def publish(self, message: dict) -> None:
        """Send ``message`` to every page (callable from any thread)."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._fanout, json.dumps(message))
        except RuntimeError:  # the loop is closing
            pass

    def _fanout(self, text: str) -> None:
        """Queue ``text`` for every page (on the loop)."""
        for q in self._clients:
            q.put_nowait(text)

    # -- polling -------------------------------------------------------------------------
    async def _poll_forever(self) -> None:
        """Poll the store (and the bench report every 2 s) and push what changed."""
        loop = asyncio.get_running_loop()
        next_bench = 0.0
        while True:
            try:
                ch = await loop.run_in_executor(None, self.view.poll)
                if ch.error != self.store_error:
                    self.store_error = ch.error
                    self._fanout(json.dumps({"type": "store", "error": ch.error}))
                if ch.devices is not None:
                    self.devices = ch.devices
                    self._fanout(json.dumps({"type": "devices", "now": time.time(),
                                             "devices": ch.devices}))
                if ch.events:
                    self.events.extend(ch.events)
                    self._fanout(json.dumps({"type": "events", "events": ch.events}))
                if ch.acks:
                    self.acks.extend(ch.acks)
                    self._fanout(json.dumps({"type": "acks", "acks": ch.acks}))
                if time.monotonic() >= next_bench:
                    next_bench = time.monotonic() + 2.0
                    bench = await loop.run_in_executor(None, self._bench_if_changed)
                    if bench is not None:
                        self._fanout(json.dumps(bench))
            except asyncio.CancelledError:
                raise
            except Exception as e:  # keep serving; say why once per poll
                self.echo(f"[E][dashboard] poll failed: {e!r}")
            await asyncio.sleep(self.poll_s)

    # -- bench report --------------------------------------------------------------------
    def _bench_file(self, rel: str) -> Path | None:
        """The bench file ``rel`` names, if it is one inside the bench directory."""
        try:
            root = self.bench_dir.resolve()
            p = (root / rel).resolve()
        except (OSError, ValueError):
            return None
        if root not in p.parents or p.suffix.lower() not in BENCH_FILES or not p.is_file():
            return None
        return p

    def _bench_url(self, src: str) -> str | None:
        """The URL of a file the report refers to, when it is a bench file."""
        if "://" in src or src.startswith(("/", "data:")):
            return None
        src = src.split("#")[0].split("?")[0]
        return f"/bench/{src}" if self._bench_file(src) is not None else None

    def _bench_if_changed(self) -> dict | None:
        """The bench message when the report or the plots changed since the last look."""
        report = self.bench_dir / "report.md"
        try:
            pngs = sorted(p.name for p in self.bench_dir.glob("*.png"))
            st = report.stat()
            key: object = (st.st_mtime_ns, st.st_size, tuple(pngs))
        except OSError:
            key = ("none", tuple(pngs) if self.bench_dir.is_dir() else ())
            pngs = list(key[1])  # type: ignore[index]
        if key == self._bench_key:
            return None
        self._bench_key = key
        if not report.is_file():
            self.bench = {"type": "bench", "exists": False, "html": "", "images": pngs}
        else:
            text = report.read_text(errors="replace")
            html = markdown.render(text, self._bench_url)
            shown = [n for n in pngs if f"/bench/{n}" not in html]
            self.bench = {
                "type": "bench", "exists": True, "html": html, "images": shown,
                "mtime": report.stat().st_mtime,
            }
        return self.bench

    # -- the app -------------------------------------------------------------------------
    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application(middlewares=[self._guard], client_max_size=64 * 1024)
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/api/state", self._state)
        app.router.add_get("/api/bench", self._bench)
        app.router.add_get("/bench/{path:.+}", self._bench_get)
        app.router.add_post("/api/ssr", self._ssr)
        app.router.add_post("/api/tap/{action}", self._tap)
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        """Same-origin JSON for anything that acts; security headers on every answer."""
        if request.method != "GET" or request.path == "/ws":
            origin = request.headers.get("Origin")
            if origin is not None and urlsplit(origin).netloc != request.host:
                return web.json_response({"ok": False, "error": "cross-origin request"},
                                         status=403)
        if request.method == "POST" and request.content_type != "application/json":
            return web.json_response({"ok": False, "error": "JSON only"}, status=415)
        try:
            resp = await handler(request)
        except BadRequest as e:
            resp = web.json_response({"ok": False, "error": str(e)}, status=400)
        resp.headers.setdefault("Cache-Control", "no-store")
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["Referrer-Policy"] = "no-referrer"
        return resp

    async def _index(self, request: web.Request) -> web.StreamResponse:  # noqa: ARG002
        """``GET /``: the page."""
        return web.FileResponse(STATIC / "index.html")

    async def _static(self, request: web.Request) -> web.StreamResponse:
        """``GET /static/NAME``: the page's script and style (files of ``static/`` only)."""
        name = request.match_info["name"]
        p = STATIC / name
        if "/" in name or name.startswith(".") or not p.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(p)

    def snapshot(self) -> dict:
        """Everything the page shows, as the ``hello`` message."""
        return {
            "type": "hello", "version": __version__, "now": time.time(),
            "config": {
                "platform_dir": str(self.platform_dir), "broker_dir": str(self.broker_dir),
                "bench_dir": str(self.bench_dir), "tap_link": self.tap_link,
                "window": self.window,
            },
            "store_error": self.store_error,
            "devices": self.devices, "events": list(self.events), "acks": list(self.acks),
            "tap": self.tap.state(), "bench": self.bench,
        }

    async def _state(self, request: web.Request) -> web.StreamResponse:  # noqa: ARG002
        """``GET /api/state``: the snapshot a page gets first, as JSON."""
        return web.json_response(self.snapshot())

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        """``GET /ws``: the snapshot, then every update, in order, until the page leaves."""
        ws = web.WebSocketResponse(heartbeat=20)
        await ws.prepare(request)
        q: asyncio.Queue[str | None] = asyncio.Queue()
        q.put_nowait(json.dumps(self.snapshot()))
        self._clients.add(q)

        async def sender() -> None:
            while True:
                text = await q.get()
                if text is None:
                    await ws.close()
                    return
                await ws.send_str(text)

        task = asyncio.ensure_future(sender())
        try:
            async for msg in ws:  # the page only listens; anything it says is ignored
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            self._clients.discard(q)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
        return ws

    async def _bench(self, request: web.Request) -> web.StreamResponse:  # noqa: ARG002
        """``GET /api/bench``: the bench report, rendered."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._bench_if_changed)
        return web.json_response(self.bench)

    async def _bench_get(self, request: web.Request) -> web.StreamResponse:
        """``GET /bench/PATH``: a plot or data file of the bench directory (nothing else)."""
        p = self._bench_file(request.match_info["path"])
        if p is None:
            raise web.HTTPNotFound()
        ctype = mimetypes.guess_type(p.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype == "application/json":
            ctype = "text/plain"  # shown as text, never run as a page
        return web.FileResponse(p, headers={"Content-Type": ctype})

    # -- SSRs ----------------------------------------------------------------------------
    def broker(self) -> tuple[str, Credentials]:
        """The broker URL and the platform account (never shown to the page)."""
        bdir = BrokerDir(self.broker_dir)
        creds = bdir.platform_credentials()
        url = self.broker_url or bdir.running_url()
        if not url:
            raise TwintapError(f"no broker running in {bdir.path}")
        return url, creds

    async def _json(self, request: web.Request) -> dict:
        """The request's JSON object body (BadRequest otherwise)."""
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("the body is not JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        return body

    async def _ssr(self, request: web.Request) -> web.StreamResponse:
        """``POST /api/ssr``: send one SSR and answer its ack (or why there is none)."""
        body = await self._json(request)
        app = _body_field(body, "app", str)
        cid = _body_field(body, "cid", str)
        opname = _body_field(body, "op", str)
        if opname not in SSR_OPS:
            raise BadRequest(f"op must be one of {', '.join(SSR_OPS)}")
        op = SSR_OPS[opname]
        n = _body_field(body, "n", str, required=opname in ("write", "exec"))
        msg: object = {}
        if n is not None and opname != "info":
            msg = {"n": n}
            if opname in ("write", "exec") and "v" in body:
                msg["v"] = body["v"]
        if opname == "write" and "v" not in body:
            raise BadRequest("a write needs 'v'")
        timeout = float(body.get("timeout") or 5.0)
        timeout = min(max(timeout, 0.5), 30.0)
        loop = asyncio.get_running_loop()
        what = f"{rc.name(op)} {json.dumps(msg)} to {app}/cid/{cid}"
        try:
            url, creds = self.broker()
            acks = await loop.run_in_executor(
                None, lambda: send_ssr(url, creds, app, cid, op, msg, timeout)
            )
        except TwintapError as e:
            self.echo(f"[W][dashboard] SSR {what}: {e}")
            return web.json_response({"ok": False, "error": str(e), "request": {
                "op": rc.name(op), "msg": msg}})
        ack = acks[0]
        text = ack.describe()
        self.echo(f"[I][dashboard] SSR {what}: {text}")
        return web.json_response({
            "ok": ack.ok, "status": status_text(ack.body.get("op")), "text": text,
            "ack": ack.body, "request": {"op": rc.name(op), "msg": msg},
        })

    # -- Tap -----------------------------------------------------------------------------
    async def _tap(self, request: web.Request) -> web.StreamResponse:
        """``POST /api/tap/ACTION``: one call of the shared Tap session, in a worker thread."""
        action = request.match_info["action"]
        body = await self._json(request)
        s = self.tap
        calls: dict[str, Callable[[], Any]] = {
            "connect": lambda: s.connect(_body_field(body, "url", str)),
            "disconnect": lambda: s.disconnect(),
            "login": lambda: s.login(_body_field(body, "user", str),
                                     _body_field(body, "password", str, required=False) or ""),
            "logout": lambda: s.logout(),
            "variables": lambda: s.variables(),
            "read": lambda: {"value": s.read(_body_field(body, "id", int))},
            "write": lambda: {"value": s.write(_body_field(body, "id", int),
                                               body.get("value"))},
            "monitor": lambda: s.monitor(
                [int(i) for i in _body_field(body, "ids", list)],
                int(body.get("period_ms") or 500),
            ),
        }
        if action not in calls:
            raise web.HTTPNotFound()
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(None, calls[action])
        except BadRequest:
            raise
        except (TwintapError, OSError, ValueError) as e:
            return web.json_response({"ok": False, "error": str(e) or type(e).__name__})
        return web.json_response({"ok": True, **(result if isinstance(result, dict) else {})})
