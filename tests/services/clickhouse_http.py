"""ClickHouse's HTTP interface on loopback, served from chDB: the tests' ClickHouse server.

No modern ClickHouse server installs on the test machines, but chDB is the
ClickHouse engine itself, so only the HTTP layer needs emulating, as far
as clickhouse-connect uses it:

- the query comes in the `query` URL parameter, the POST body, or both;
  an insert is `INSERT INTO t (cols) FORMAT Native` followed by the binary
  data (in the URL or at the head of the body), HTTP-compressed per
  `Content-Encoding` (lz4 frames, zstd, gzip, deflate), possibly chunked;
- every other URL parameter is a setting (`param_*` are query parameters);
- credentials arrive as Basic auth, `X-ClickHouse-User`/`-Key` headers or
  `user`/`password` parameters; wrong ones fail with code 516 as a server's do;
- errors are answered with the status ClickHouse maps their code to and the
  `X-ClickHouse-Exception-Code` header, which clickhouse-connect reads;
- `/ping` answers `Ok.`.

One process serves one chDB session (chDB runs one engine per process), so
it runs as a subprocess: `python -m tests.services.clickhouse_http --port P
--data-dir D --user U --password W`. Tests drive it with `ClickHouseServer`,
which can also stop and restart it (outages) and make the next inserts fail
(`/_fixture/fail_next_inserts`).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import urllib.request
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, quote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from tests.services.ports import free_port, tail, terminate, wait_until

# URL parameters of ClickHouse's HTTP interface that are not settings.
_HTTP_PARAMETERS: Final = frozenset(
    {
        "query",
        "database",
        "default_format",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "compress",
        "decompress",
        "user",
        "password",
        "quota_key",
        "buffer_size",
        "wait_end_of_query",
        "client_protocol_version",
        "role",
    }
)
_SETTING_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INSERT: Final = re.compile(
    rb"\s*(?P<statement>INSERT\s+INTO\s+.+?)\s+FORMAT\s+(?P<format>\w+)[ \t]*(?:\r?\n)?",
    re.IGNORECASE | re.DOTALL,
)
_TRAILING_FORMAT: Final = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_ERROR_CODE: Final = re.compile(r"Code: (\d+)")

AUTHENTICATION_FAILED: Final = 516
MEMORY_LIMIT_EXCEEDED: Final = 241
# How ClickHouse's HTTP handler maps exception codes to statuses (the rest: 500).
_STATUS_OF_CODE: Final = {
    194: 401,  # REQUIRED_PASSWORD
    192: 403,  # UNKNOWN_USER
    193: 403,  # WRONG_PASSWORD
    516: 403,  # AUTHENTICATION_FAILED
    62: 400,  # SYNTAX_ERROR
    27: 400,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    53: 400,  # TYPE_MISMATCH
    36: 400,  # BAD_ARGUMENTS
    16: 400,  # NO_SUCH_COLUMN_IN_TABLE
    60: 404,  # UNKNOWN_TABLE
    81: 404,  # UNKNOWN_DATABASE
    46: 404,  # UNKNOWN_FUNCTION
    47: 404,  # UNKNOWN_IDENTIFIER
    115: 404,  # UNKNOWN_SETTING
    73: 404,  # UNKNOWN_FORMAT
}


class QueryError(Exception):
    """A ClickHouse exception, with the code a server would send."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class _Engine:
    """One chDB session executing one request at a time, plus the injected failures."""

    def __init__(self, data_dir: Path) -> None:
        from chdb import session as chdb_session

        self._session = chdb_session.Session(str(data_dir / "chdb"))
        self._lock = threading.Lock()
        self._failing_inserts = 0
        self._fail_after_commit = False

    def fail_next_inserts(self, count: int, after_commit: bool) -> None:
        with self._lock:
            self._failing_inserts = count
            self._fail_after_commit = after_commit

    def execute(
        self,
        sql: bytes,
        data: bytes | None,
        data_format: str,
        database: str,
        settings: dict[str, str],
        params: dict[str, str],
    ) -> tuple[bytes, int, bool]:
        """Run one request: (response body, rows written, whether to drop the connection)."""
        with self._lock:
            self._run(f"USE `{database}`")
            if data is not None:
                # chDB's streaming insert ignores session settings: they go inline.
                inline = ", ".join(
                    f"{name} = '{_quote(value)}'" for name, value in settings.items()
                )
                statement = sql.decode() + (f" SETTINGS {inline}" if inline else "")
                return self._insert(statement, data, data_format)
            for name, value in settings.items():
                self._run(f"SET {name} = '{_quote(value)}'")
            try:
                return self._run(sql.decode(), data_format, params), 0, False
            finally:
                for name in settings:
                    self._run(f"SET {name} = DEFAULT")

    def _insert(self, statement: str, data: bytes, data_format: str) -> tuple[bytes, int, bool]:
        drop_connection = False
        if self._failing_inserts:
            self._failing_inserts -= 1
            if not self._fail_after_commit:
                raise QueryError(
                    MEMORY_LIMIT_EXCEEDED,
                    "Code: 241. DB::Exception: Memory limit (total) exceeded: "
                    "failure injected by the test fixture. (MEMORY_LIMIT_EXCEEDED)",
                )
            drop_connection = True  # the insert commits, then the answer is lost
        try:
            inserter = self._session.send_insert(statement, data_format)
        except RuntimeError as exc:
            raise _query_error(exc) from None
        try:
            inserter.append(data)
            written = inserter.finish().rows_written
        except RuntimeError as exc:
            inserter.cancel()
            raise _query_error(exc) from None
        return b"", int(written), drop_connection

    def _run(
        self, sql: str, data_format: str = "TabSeparated", params: dict[str, str] | None = None
    ) -> bytes:
        try:
            result = self._session.query(sql, data_format, params=params or None)
        except RuntimeError as exc:
            raise _query_error(exc) from None
        return bytes(result.bytes()) if result is not None else b""

    def close(self) -> None:
        with self._lock:
            self._session.close()


def _query_error(exc: Exception) -> QueryError:
    message = str(exc).partition("failed: ")[2] or str(exc)
    found = _ERROR_CODE.search(message)
    return QueryError(int(found.group(1)) if found else 1001, message)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _decompress(body: bytes, encoding: str) -> bytes:
    if not encoding or encoding == "identity":
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "zstd":
        from backports import zstd

        return bytes(zstd.decompress(body))
    if encoding == "lz4":  # one frame per block, concatenated
        import lz4.frame  # type: ignore[import-untyped]

        out = bytearray()
        while body:
            decompressor = lz4.frame.LZ4FrameDecompressor()
            out += decompressor.decompress(body)
            body = decompressor.unused_data
        return bytes(out)
    raise QueryError(1001, f"Code: 1001. DB::Exception: unsupported Content-Encoding {encoding}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read the data
        pass

    def _handle(self) -> None:
        url = urlsplit(self.path)
        body = self._read_body()
        if url.path in ("/ping", "/") and not url.query and not body:
            self._answer(200, b"Ok.\n", {"Content-Type": "text/plain; charset=UTF-8"})
            return
        if url.path == "/_fixture/fail_next_inserts":
            control = dict(parse_qsl(url.query))
            self.server.engine.fail_next_inserts(
                int(control["count"]), control.get("after_commit") == "1"
            )
            self._answer(200, b"Ok.\n", {})
            return
        arguments = dict(parse_qsl(url.query, keep_blank_values=True))
        query_id = arguments.get("query_id") or str(uuid.uuid4())
        try:
            result, written, drop, data_format = self._execute(arguments, body)
        except QueryError as exc:
            self._answer_error(exc, query_id)
            return
        except Exception as exc:  # a fixture bug must show as an error, not a dropped connection
            self._answer_error(QueryError(1001, f"Code: 1001. DB::Exception: {exc!r}"), query_id)
            return
        if drop:
            self._drop_connection()
            return
        summary = {"read_rows": "0", "read_bytes": "0", "written_rows": str(written),
                   "written_bytes": "0", "total_rows_to_read": "0", "result_rows": "0",
                   "result_bytes": str(len(result)), "elapsed_ns": "0"}  # fmt: skip
        self._answer(
            200,
            result,
            {
                "Content-Type": "application/octet-stream",
                "X-ClickHouse-Query-Id": query_id,
                "X-ClickHouse-Format": data_format,
                "X-ClickHouse-Timezone": "UTC",
                "X-ClickHouse-Server-Display-Name": "chdb-fixture",
                "X-ClickHouse-Summary": json.dumps(summary),
            },
        )

    def _execute(self, arguments: dict[str, str], body: bytes) -> tuple[bytes, int, bool, str]:
        """(result, rows written, whether to drop the connection, format) of a request."""
        self._authenticate(arguments)
        body = _decompress(body, self.headers.get("Content-Encoding", ""))
        sql, data, data_format = self._statement(arguments.get("query", ""), body, arguments)
        settings = {
            name: value
            for name, value in arguments.items()
            if name not in _HTTP_PARAMETERS and not name.startswith("param_")
        }
        if not all(_SETTING_NAME.fullmatch(name) for name in settings):
            raise QueryError(115, "Code: 115. DB::Exception: bad setting name. (UNKNOWN_SETTING)")
        params = {
            name.removeprefix("param_"): value
            for name, value in arguments.items()
            if name.startswith("param_")
        }
        database = arguments.get("database") or "default"
        result = self.server.engine.execute(sql, data, data_format, database, settings, params)
        return (*result, data_format)

    def _answer_error(self, error: QueryError, query_id: str) -> None:
        self._answer(
            _STATUS_OF_CODE.get(error.code, 500),
            f"{error} (version {self.server.version})\n".encode(),
            {
                "Content-Type": "text/plain; charset=UTF-8",
                "X-ClickHouse-Exception-Code": str(error.code),
                "X-ClickHouse-Query-Id": query_id,
            },
        )

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            chunks = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return bytes(chunks)
                chunks += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _authenticate(self, arguments: dict[str, str]) -> None:
        user, password = "default", ""
        authorization = self.headers.get("Authorization", "")
        if authorization.startswith("Basic "):
            user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
        elif "X-ClickHouse-User" in self.headers:
            user = self.headers["X-ClickHouse-User"]
            password = self.headers.get("X-ClickHouse-Key", "")
        elif "user" in arguments:
            user, password = arguments["user"], arguments.get("password", "")
        if (user, password) != (self.server.user, self.server.password):
            raise QueryError(
                AUTHENTICATION_FAILED,
                f"Code: 516. DB::Exception: {user}: Authentication failed: password is "
                "incorrect, or there is no user with such name. (AUTHENTICATION_FAILED)",
            )

    def _statement(
        self, query: str, body: bytes, arguments: dict[str, str]
    ) -> tuple[bytes, bytes | None, str]:
        """(SQL, insert data or None, format) of a request."""
        if query:
            insert = _INSERT.fullmatch(query.encode())
            if insert:
                return insert["statement"], body, insert["format"].decode()
            sql = query.encode() + (b"\n" + body if body else b"")
        else:
            insert = _INSERT.match(body)
            if insert:
                return insert["statement"], body[insert.end() :], insert["format"].decode()
            sql = body
        named = _TRAILING_FORMAT.search(sql.decode(errors="replace"))
        data_format = named.group(1) if named else arguments.get("default_format") or "TabSeparated"
        return sql, None, data_format

    def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drop_connection(self) -> None:
        """Reset the connection without an answer, as a network failure does."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, engine: _Engine, user: str, password: str, version: str) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.engine = engine
        self.user = user
        self.password = password
        self.version = version


def serve(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--user", default="default")
    parser.add_argument("--password", default="")
    parser.add_argument("--tls-cert", type=Path, help="serve https with this certificate...")
    parser.add_argument("--tls-key", type=Path, help="...and this key")
    args = parser.parse_args(argv)
    engine = _Engine(args.data_dir)
    version = engine._run("SELECT version()").decode().strip()
    server = _Server(args.port, engine, args.user, args.password, version)
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
        engine.close()


class ClickHouseServer:
    """A `serve` subprocess on a fixed loopback port, its data kept across restarts.

    `url` is what `WRITECH_CLICKHOUSE_URL` takes (the password percent-encoded).
    With `tls` (certificate and key files) it serves https; `url` then names
    the certificate as the CA to trust.
    """

    def __init__(
        self,
        data_dir: Path,
        user: str = "writech",
        password: str = "",
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.user = user
        self.password = password or f"pw/{uuid.uuid4().hex[:12]}@"
        self.tls = tls
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        data_dir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return self.url_with(self.password)

    def url_with(self, password: str, database: str = "writech") -> str:
        """The server's URL with another password or database (for failure tests)."""
        url = f"{self.scheme}://{self.user}:{quote(password, safe='')}@127.0.0.1:{self.port}"
        return f"{url}/{database}?ca_cert={self.tls[0]}" if self.tls else f"{url}/{database}"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 60) -> None:
        if self.running:
            return
        log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115 - the child keeps it
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.services.clickhouse_http", "--port", str(self.port),
             "--data-dir", str(self.data_dir), "--user", self.user, "--password", self.password,
             *(["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])] if self.tls else [])],
            cwd=Path(__file__).resolve().parents[2],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        try:
            wait_until(self._answers_ping, timeout, f"ClickHouse HTTP fixture on port {self.port}")
        except TimeoutError:
            self.stop()
            raise RuntimeError(
                f"the ClickHouse HTTP fixture did not start; its log:\n{self.log_tail()}"
            ) from None

    def stop(self) -> None:
        """Shut the server down (SIGTERM to the PID it was started with, SIGKILL if it hangs)."""
        process, self._process = self._process, None
        terminate(process, 30)

    def client(self) -> Client:
        """A plain clickhouse-connect client, to look at the tables as any reader would."""
        trust: dict[str, Any] = {"ca_cert": str(self.tls[0])} if self.tls else {}
        return clickhouse_connect.get_client(
            interface=self.scheme, host="127.0.0.1", port=self.port, username=self.user,
            password=self.password, autogenerate_session_id=False, **trust,
        )  # fmt: skip

    def fail_next_inserts(self, count: int, after_commit: bool = False) -> None:
        """Make the next `count` inserts fail: with a transient error (code 241) before
        writing, or, `after_commit`, by dropping the connection after the rows are written."""
        self._request(f"/_fixture/fail_next_inserts?count={count}&after_commit={int(after_commit)}")

    def log_tail(self, lines: int = 30) -> str:
        return tail(self.data_dir / "server.log", lines)

    def _answers_ping(self) -> bool:
        if not self.running:
            raise RuntimeError(f"the ClickHouse HTTP fixture exited; its log:\n{self.log_tail()}")
        try:
            return self._request("/ping") == b"Ok.\n"
        except OSError:
            return False

    def _request(self, path: str) -> bytes:
        context = ssl.create_default_context(cafile=self.tls[0]) if self.tls else None
        url = f"{self.scheme}://127.0.0.1:{self.port}{path}"
        with urllib.request.urlopen(url, timeout=5, context=context) as answer:
            body: bytes = answer.read()
            return body


if __name__ == "__main__":
    serve()
