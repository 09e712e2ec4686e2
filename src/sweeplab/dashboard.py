"""``sweeplab dashboard``: optuna-dashboard on a sweep's study, through its public WSGI app."""

from __future__ import annotations

import logging
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna_dashboard

from sweeplab.errors import ConfigError
from sweeplab.redaction import redact
from sweeplab.sweep.storage import open_existing_storage

__all__ = ["serve"]

log = logging.getLogger(__name__)


class _ThreadedServer(ThreadingMixIn, WSGIServer):
    # A browser loads the page's assets and API calls in parallel.
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # one line per request is noise
        pass


def serve(source: str, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve optuna-dashboard on ``source`` (a sweep directory or a storage URL) until Ctrl-C.
    ``port=0`` picks a free port; the URL printed is the one to open."""
    app = optuna_dashboard.wsgi(open_existing_storage(source))
    try:
        server = make_server(
            host, port, app, server_class=_ThreadedServer, handler_class=_QuietHandler
        )
    except OSError as e:
        raise ConfigError(
            f"Cannot serve the dashboard on {host}:{port}: {e.strerror}. Choose another port "
            "with --port N (--port 0 picks a free one)."
        ) from None
    shown_host = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
    print(
        f"optuna-dashboard on {redact(source)}: "
        f"http://{shown_host}:{server.server_port}/dashboard/ (Ctrl-C stops it)",
        flush=True,
    )
    with server:
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("Dashboard stopped.", flush=True)
