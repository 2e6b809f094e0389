"""A loopback HTTP server serving test sources: fixed bodies, redirects, delays, transient failures."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    fail_first: int = 0  # answer 503 to the first N requests
    trickle: float = 0.0  # send the body one byte per this many seconds (a slow-loris source)
    hits: int = 0


class SourceServer:
    """Routes are registered per test with :meth:`route`; ``host`` is the allowlist entry."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = routes.get(self.path)
                if route is None:
                    self.send_error(404)
                    return
                route.hits += 1
                if route.delay:
                    time.sleep(route.delay)
                status = 503 if route.hits <= route.fail_first else route.status
                self.send_response(status)
                for key, value in route.headers.items():
                    self.send_header(key, value)
                body = route.body if status == 200 else b""
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    if route.trickle:
                        for i in range(len(body)):
                            self.wfile.write(body[i : i + 1])
                            self.wfile.flush()
                            time.sleep(route.trickle)
                    else:
                        self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def route(self, path: str, **kwargs: object) -> str:
        """Register ``path`` and return its full URL."""
        self.routes[path] = Route(**kwargs)  # type: ignore[arg-type]
        return f"http://{self.host}{path}"

    def url(self, path: str) -> str:
        return f"http://{self.host}{path}"
