"""``sweeplab dashboard``: optuna-dashboard on a sweep's study, through its public WSGI app.

Read-only unless asked: the dashboard has create, rename, delete and tell buttons, and one
click in a browser must not change a finished study. A sweep directory is found in whichever
storage the sweep recorded in its results file, not only its own ``optuna.db``."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna_dashboard
import yaml

from sweeplab.errors import ConfigError
from sweeplab.redaction import MASK, redact
from sweeplab.sweep.context import STORAGE_ENV
from sweeplab.sweep.report import RESULTS_FILE
from sweeplab.sweep.storage import DEFAULT_SQLITE_FILE, is_journal, open_existing_storage

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication

__all__ = ["READS", "read_only", "recorded_storage", "serve", "storage_url"]

READS = ("GET", "HEAD")
REFUSAL = (
    "sweeplab serves this dashboard read-only: nothing in the study can be changed or deleted "
    "here. Restart it with `sweeplab dashboard ... --allow-changes` to edit."
)

log = logging.getLogger(__name__)


class _ThreadedServer(ThreadingMixIn, WSGIServer):
    # A browser loads the page's assets and API calls in parallel.
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # one line per request is noise
        pass


def serve(
    source: str, host: str = "127.0.0.1", port: int = 8080, allow_changes: bool = False
) -> None:
    """Serve optuna-dashboard on ``source`` (a sweep directory or a storage URL) until Ctrl-C.
    ``port=0`` picks a free port; the URL printed is the one to open. Requests that would
    change or delete a study are refused unless ``allow_changes``."""
    url = storage_url(source)
    app = optuna_dashboard.wsgi(open_existing_storage(url))
    if not allow_changes:
        app = read_only(app)
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
    mode = "" if allow_changes else ", read-only (--allow-changes to edit)"
    print(
        f"optuna-dashboard on {redact(url)}{mode}: "
        f"http://{shown_host}:{server.server_port}/dashboard/ (Ctrl-C stops it)",
        flush=True,
    )
    with server:
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("Dashboard stopped.", flush=True)


def read_only(app: WSGIApplication) -> WSGIApplication:
    """``app``, answering every request that is not a read (GET, HEAD) with 403 and a reason
    the dashboard shows, so that nothing in the storage changes."""

    def guarded(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET") in READS:
            return app(environ, start_response)
        body = json.dumps({"reason": REFUSAL}).encode()
        start_response(
            "403 Forbidden",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return guarded


def storage_url(source: str) -> str:
    """The storage to open for ``source``: a URL as given; for a sweep directory, its own
    ``optuna.db`` if there is one, else the storage its results file records. A recorded URL
    has its password masked, so then the URL comes from ``SWEEPLAB_STORAGE``, where the README
    tells users to keep it."""
    directory = Path(source).expanduser()
    if "://" in source or is_journal(source) or (directory / DEFAULT_SQLITE_FILE).is_file():
        return source
    recorded = recorded_storage(directory)
    if recorded is None or MASK not in recorded:
        return source if recorded is None else recorded
    from_env = os.environ.get(STORAGE_ENV, "")
    if redact(from_env) != recorded:
        raise ConfigError(
            f"The sweep in {source} ran on {recorded}, whose password is not written anywhere. "
            f"Set {STORAGE_ENV} to that URL with its password (as the sweep had it), or pass "
            "the URL itself: sweeplab dashboard postgresql://user:PASSWORD@host/db."
        )
    return from_env


def recorded_storage(directory: Path) -> str | None:
    """The storage URL (password masked) that a sweep directory's results file records."""
    path = directory / RESULTS_FILE
    if not path.is_file():
        return None
    try:  # plain YAML: a results file is data, never resolved as a config
        results = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return None
    storage = results.get("storage") if isinstance(results, dict) else None
    return storage if isinstance(storage, str) and storage else None
