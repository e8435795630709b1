"""One loopback HTTP server for both sandbox APIs (X under ``/2/``; Reddit under ``/api/``, ``/r/``, ...).

Real HTTP on a real socket, so tweepy and praw run unchanged against it with only their base URL moved.
The server owns what is common to both platforms: fault injection (a test arms a fault per request path)
and the request log that tests read to prove what a collector fetched.
"""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.util
import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from trustwatch.sandbox.common import (
    Api,
    CorpusConfig,
    FaultPlan,
    LoggedRequest,
    SandboxRequest,
    SandboxResponse,
    json_response,
)
from trustwatch.sandbox.x_api import XApi

log = logging.getLogger(__name__)


def _load_reddit_api(
    config: CorpusConfig,
    client_id: str,
    client_secret: str,
    private_subreddits: Sequence[str],
    rate_limit: int | None,
) -> Any | None:
    """The Reddit sandbox, when its module exists (it is written separately)."""
    if importlib.util.find_spec("trustwatch.sandbox.reddit_api") is None:
        return None
    module = importlib.import_module("trustwatch.sandbox.reddit_api")
    return module.RedditApi(
        config,
        client_id=client_id,
        client_secret=client_secret,
        private_subreddits=tuple(private_subreddits),
        rate_limit=rate_limit,
    )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # keep-alive request/response pairs otherwise wait ~40 ms each on delayed ACKs
    disable_nagle_algorithm = True
    server_version = "trustwatch-sandbox/1"
    sandbox: SandboxServer  # set on the per-server subclass

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("sandbox %s - %s", self.address_string(), format % args)

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        request = SandboxRequest(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        self.sandbox._serve(self, request)

    do_GET = _dispatch
    do_POST = _dispatch
    do_PUT = _dispatch
    do_PATCH = _dispatch
    do_DELETE = _dispatch

    def send_sandbox_response(self, response: SandboxResponse, body: bytes | None = None) -> None:
        payload = response.body if body is None else body
        self.send_response(response.status)
        for name, value in response.headers.items():
            if name.lower() not in ("content-length", "connection"):
                self.send_header(name, value)
        self.send_header("content-length", str(len(payload)))
        if body is not None:
            self.send_header("connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def reset_connection(self) -> None:
        """Close the socket with an RST and no reply, as a dropped connection looks to the client."""
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close_connection = True
        try:
            self.connection.close()
        except OSError:
            pass


class SandboxServer:
    """The X and Reddit sandboxes on one loopback port, with fault injection and a request log."""

    def __init__(
        self,
        config: CorpusConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        x_bearer_token: str = "sandbox-x-token",  # noqa: S107 - a sandbox credential, not a secret
        reddit_client_id: str = "sandbox-client",
        reddit_client_secret: str = "sandbox-secret",  # noqa: S107
        private_subreddits: Sequence[str] = (),
        rate_limit: int | None = None,
    ) -> None:
        self.config = config or CorpusConfig()
        self.host = host
        self.port = port
        self.url = ""
        self.faults = FaultPlan()
        self.request_log: list[LoggedRequest] = []
        self._log_lock = threading.Lock()
        self.x = XApi(self.config, bearer_token=x_bearer_token, rate_limit=rate_limit)
        self.reddit = _load_reddit_api(
            self.config, reddit_client_id, reddit_client_secret, private_subreddits, rate_limit
        )
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def apis(self) -> list[Api]:
        """The mounted platform APIs, asked in order."""
        apis: list[Api] = [self.x]
        if self.reddit is not None:
            apis.append(self.reddit)
        return apis

    def start(self) -> SandboxServer:
        """Bind and serve in a background thread; ``url`` is set once this returns."""
        if self._httpd is not None:
            return self
        handler = type("SandboxHandler", (_Handler,), {"sandbox": self})
        httpd = ThreadingHTTPServer((self.host, self.port), handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(target=httpd.serve_forever, name="trustwatch-sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def clear_log(self) -> None:
        """Forget the logged requests (tests do this between phases)."""
        with self._log_lock:
            self.request_log.clear()

    def requests_to(self, path_prefix: str) -> list[LoggedRequest]:
        """The logged requests whose path starts with ``path_prefix``, in arrival order."""
        with self._log_lock:
            return [r for r in self.request_log if r.path.startswith(path_prefix)]

    def _record(self, request: SandboxRequest, status: int, served_ids: list[str], received: float) -> None:
        entry = LoggedRequest(request.method, request.path, request.query, status, list(served_ids), received)
        with self._log_lock:
            self.request_log.append(entry)

    def _answer(self, request: SandboxRequest) -> SandboxResponse:
        for api in self.apis:
            try:
                response = api.handle(request)
            except Exception:  # a sandbox bug must surface as a 500, like a real server, not a hang
                log.exception("sandbox API failed on %s %s", request.method, request.path)
                return json_response(500, {"title": "Internal Server Error", "status": 500})
            if response is not None:
                return response
        return json_response(404, {"title": "Not Found Error", "detail": f"no route for {request.path}"})

    def _serve(self, handler: _Handler, request: SandboxRequest) -> None:
        received = time.monotonic()
        fault = self.faults.take(request.path)
        if fault is not None and fault.kind == "reset":
            self._record(request, 0, [], received)
            handler.reset_connection()
            return
        if fault is not None and fault.kind == "status":
            headers = {"content-type": "application/json; charset=utf-8"}
            headers.update(fault.headers)
            response = SandboxResponse(fault.status, fault.body, headers)
            self._record(request, fault.status, [], received)
            handler.send_sandbox_response(response)
            return
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.seconds)
        response = self._answer(request)
        if fault is not None and fault.kind == "poison" and response.status == 200:
            from trustwatch.sandbox.common import poison_body

            response = SandboxResponse(response.status, poison_body(response.body, "x" if request.path.startswith(
                "/2/") else "reddit"), response.headers, served_ids=response.served_ids)
        if fault is not None and fault.kind == "truncate":
            self._record(request, response.status, [], received)
            handler.send_sandbox_response(response, body=response.body[: len(response.body) // 2])
            return
        self._record(request, response.status, response.served_ids, received)
        try:
            handler.send_sandbox_response(response)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. its timeout hit)
            handler.close_connection = True


def serve(host: str, port: int, seed: int, posts: int, days: int = 7, events: bool = False) -> None:
    """Run the sandbox in the foreground until interrupted (``trustwatch sandbox serve``)."""
    server = SandboxServer(CorpusConfig(seed=seed, posts=posts, days=days, events=events), host=host, port=port)
    if server.reddit is not None:  # Reddit comments keep arriving for days after the corpus's end: in real time
        server.reddit.clock = lambda: dt.datetime.now(dt.UTC)
    server.start()
    end = server.config.stop
    print(f"trustwatch sandbox listening on {server.url}", flush=True)
    print(
        f"corpus: seed {seed}, {len(server.x.corpus.tweets)} X posts from "
        f"{server.config.start.isoformat()} to {end.isoformat()}",
        flush=True,
    )
    x_conn = {"conn_type": "http", "password": "sandbox-x-token", "extra": {"base_url": server.url}}
    print("# paste into the shell that runs the trustwatch command line:", flush=True)
    print(f"export AIRFLOW_CONN_X_API='{json.dumps(x_conn)}'", flush=True)
    if server.reddit is None:
        print("# Reddit: not available (sandbox/reddit_api.py is missing)", flush=True)
    else:
        reddit_conn = {"conn_type": "http", "login": "sandbox-client", "password": "sandbox-secret",
                       "extra": {"base_url": server.url, "user_agent": "trustwatch-sandbox"}}
        print(f"export AIRFLOW_CONN_REDDIT_API='{json.dumps(reddit_conn)}'", flush=True)
    first, last = (t.isoformat().replace("+00:00", "Z") for t in (server.config.start, end))
    print(f"# then: trustwatch db upgrade && trustwatch collect x --start {first} --end {last}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
