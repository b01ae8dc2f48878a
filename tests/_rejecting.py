"""A loopback S3-like endpoint that answers ExpiredToken to its first requests."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

EXPIRED = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>ExpiredToken</Code>'
    b"<Message>The provided token has expired.</Message></Error>"
)
BUCKETS = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    b"<Owner><ID>owner</ID></Owner><Buckets></Buckets></ListAllMyBucketsResult>"
)


class RejectingEndpoint(ThreadingHTTPServer):
    """Answers ``ExpiredToken`` to the first ``rejections`` requests, then an empty bucket list."""

    def __init__(self, rejections: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.rejections = rejections
        self.signed_with: list[str] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: RejectingEndpoint

    def do_GET(self) -> None:
        key = self.headers["Authorization"].split("Credential=")[1].split("/")[0]
        with self.server.lock:
            self.server.signed_with.append(key)
            reject = self.server.rejections > 0
            self.server.rejections -= 1
        status, body = (400, EXPIRED) if reject else (200, BUCKETS)
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass
