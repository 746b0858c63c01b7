"""Helpers of the tests: the server under test, a webhook receiver on
loopback, and a minimal WebSocket client for the signaling socket."""

from __future__ import annotations

import base64
import json
import os
import queue
import socket
import struct
import threading
import time
import unittest
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import switchboard

URL = os.environ.get("SWITCHBOARD_URL")
KEY = os.environ.get("SWITCHBOARD_API_KEY", "devkey")
SECRET = os.environ.get("SWITCHBOARD_API_SECRET", "secret")

needs_server = unittest.skipUnless(URL, "set SWITCHBOARD_URL (and _API_KEY, _API_SECRET) to a --dev server")


def client() -> switchboard.Switchboard:
    """A client of the server under test."""
    return switchboard.Switchboard(URL, KEY, SECRET)


def unique(prefix: str) -> str:
    """A name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def eventually(check: Callable[[], Any], timeout_s: float = 30.0, what: str = "condition") -> Any:
    """Polls ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


class Receiver:
    """An HTTP server on loopback that records every POST it gets."""

    def __init__(self) -> None:
        received: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                received.put(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def next(self, timeout_s: float = 30.0) -> tuple[dict[str, str], bytes]:
        """The next delivery's headers (names in lower case) and body."""
        try:
            return self.received.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError(f"no webhook delivery within {timeout_s} s") from None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Refused(Exception):
    """The server answered the WebSocket upgrade with an HTTP error."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


class Signaling:
    """A signaling WebSocket (RFC 6455, text frames only), enough to join a room."""

    def __init__(self, url: str, token: str, timeout_s: float = 15.0) -> None:
        u = urllib.parse.urlparse(url)
        port = u.port or (443 if u.scheme == "wss" else 80)
        self.sock = socket.create_connection((u.hostname, port), timeout=timeout_s)
        key = base64.b64encode(os.urandom(16)).decode()
        target = f"{u.path or '/'}?access_token={urllib.parse.quote(token)}"
        self.sock.sendall(
            (
                f"GET {target} HTTP/1.1\r\nHost: {u.hostname}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            head += chunk
        head, _, self.buf = head.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        if status != 101:
            length = next(
                (int(h.split(":", 1)[1]) for h in lines if h.lower().startswith("content-length:")), 0
            )
            while len(self.buf) < length:
                chunk = self.sock.recv(4096)
                if not chunk:
                    break
                self.buf += chunk
            self.sock.close()
            raise Refused(status, self.buf.decode("utf-8", "replace"))

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the signaling socket closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self) -> dict[str, Any]:
        """The next JSON message (control frames skipped)."""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", self._read(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._read(8))
            payload = self._read(n)
            opcode = b0 & 0x0F
            if opcode == 1:
                return json.loads(payload)
            if opcode == 8:
                raise ConnectionError(f"the server closed the socket: {payload[2:].decode(errors='replace')}")

    def recv_type(self, kind: str) -> dict[str, Any]:
        """The next message of type ``kind``, skipping others."""
        while True:
            msg = self.recv()
            if msg.get("type") == kind:
                return msg

    def send(self, msg: dict[str, Any]) -> None:
        """Sends a JSON message (masked, as clients must)."""
        payload = json.dumps(msg).encode()
        mask = os.urandom(4)
        n = len(payload)
        header = bytes([0x81]) + (
            bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n)
        )
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def leave(self) -> None:
        """Leaves the room and closes the socket."""
        try:
            self.send({"type": "leave"})
        finally:
            self.sock.close()
