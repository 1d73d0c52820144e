"""HTTP(S) mirrors on 127.0.0.1 for the download tests (HTTPS with a TLS context)."""

import contextlib
import http.server
import ssl
import threading
from collections.abc import Callable, Iterator


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "Mirror"

    def do_GET(self) -> None:
        self.server.requests.append(self.path.lstrip("/"))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
            self.server.behaviour(self, self.path.lstrip("/"))

    def send(self, status: int, body: bytes = b"", length: int | None = None,
             **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.send_header("Connection", "close")  # one request per connection, counted as such
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def log_message(self, *args: object) -> None:
        pass


class Mirror(http.server.ThreadingHTTPServer):
    """`behaviour(handler, path)` answers each GET; `requests` and `connections` count them."""

    daemon_threads = True

    def __init__(self, behaviour: Callable[[Handler, str], None],
                 tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.behaviour, self.requests, self.connections = behaviour, [], 0
        self.closing = threading.Event()  # behaviours that stall wait on it
        if tls:  # accept() then makes each handshake: one the client refuses ends there
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.server_port}/"

    def get_request(self) -> tuple:
        self.connections += 1
        return super().get_request()

    def handle_error(self, request: object, address: object) -> None:
        pass


@contextlib.contextmanager
def serving(behaviour: Callable[[Handler, str], None],
            tls: ssl.SSLContext | None = None) -> Iterator[Mirror]:
    server = Mirror(behaviour, tls)
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    try:
        yield server
    finally:
        server.closing.set()
        server.shutdown()
        server.server_close()
