"""What works without a server: token signing, webhook verification,
pagination, and the transport's retries, idempotency keys and errors
(against a scripted HTTP server on loopback)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import switchboard
from switchboard import AccessToken, ConfigurationError, Grants, Page, verify_access_token, verify_webhook


def b64url_json(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


class AccessTokens(unittest.TestCase):
    def test_claims_are_the_servers(self) -> None:
        jwt = AccessToken(
            "key1", "s3cret", room="standup", identity="ann", name="Ann", metadata="m", ttl_s=60
        ).to_jwt(now=1_000)
        h, c, s = jwt.split(".")
        self.assertEqual(b64url_json(h), {"typ": "JWT", "alg": "HS256", "kid": "key1"})
        self.assertEqual(
            b64url_json(c),
            {
                "iss": "key1",
                "sub": "ann",
                "exp": 1_060,
                "nbf": 1_000,
                "iat": 1_000,
                "name": "Ann",
                "metadata": "m",
                "grants": {
                    "room": "standup",
                    "can_publish": True,
                    "can_subscribe": True,
                    "can_publish_data": True,
                    "room_admin": False,
                    "room_create": False,
                    "recorder": False,
                },
            },
        )
        mac = hmac.new(b"s3cret", f"{h}.{c}".encode(), hashlib.sha256).digest()
        self.assertEqual(s, base64.urlsafe_b64encode(mac).rstrip(b"=").decode())

    def test_grants_round_trip_and_verification(self) -> None:
        g = Grants(can_publish=False, room_admin=True, can_update_metadata=True)
        jwt = AccessToken("k", "secret", room="r", identity="i", grants=g).to_jwt()
        claims = verify_access_token(jwt, "secret")
        self.assertEqual(claims.identity, "i")
        self.assertEqual(claims.room, "r")
        self.assertFalse(claims.grants.can_publish)
        self.assertTrue(claims.grants.room_admin and claims.grants.can_update_metadata)
        with self.assertRaisesRegex(ConfigurationError, "signature"):
            verify_access_token(jwt, "other")
        old = AccessToken("k", "secret", room="r", identity="i", ttl_s=5).to_jwt(now=time.time() - 10)
        with self.assertRaisesRegex(ConfigurationError, "expired"):
            verify_access_token(old, "secret")

    def test_bad_input_is_refused_before_signing(self) -> None:
        cases: list[tuple[dict[str, Any], str]] = [
            (dict(room="", identity="a"), "room must be"),
            (dict(room="r", identity="a\n"), "control characters"),
            (dict(room="r", identity="x" * 129), "limit is 128"),
            (dict(room="r", identity="a", ttl_s=86_401), "ttl_s must be between"),
            (dict(room="r", identity="a", metadata="x" * 4097), "4096"),
            (dict(room="r", identity="a", grants=Grants(room="other")), "leave grants.room out"),
        ]
        for kwargs, message in cases:
            with self.subTest(**{k: str(v)[:20] for k, v in kwargs.items()}):
                with self.assertRaisesRegex(ConfigurationError, message):
                    AccessToken("k", "s", **kwargs).to_jwt()
        with self.assertRaisesRegex(ConfigurationError, "SWITCHBOARD_API_SECRET"):
            AccessToken("k", "", room="r", identity="a").to_jwt()


class Webhooks(unittest.TestCase):
    SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()

    def sign(self, msg_id: str, ts: int, body: bytes) -> str:
        key = b"0123456789abcdef0123456789abcdef"
        mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
        return "v1," + base64.b64encode(mac).decode()

    def delivery(self) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(
            {
                "id": "ev_1",
                "project_id": "pr_1",
                "seq": 7,
                "created_at": "2026-11-23T12:13:20.123456Z",
                "type": "room.started",
                "data": {"room": {"sid": "rm_1", "name": "standup"}},
            }
        ).encode()
        ts = int(time.time())
        return body, {
            "Webhook-Id": "ev_1",
            "Webhook-Timestamp": str(ts),
            "Webhook-Signature": self.sign("ev_1", ts, body),
        }

    def test_a_signed_delivery_verifies_into_an_event(self) -> None:
        body, headers = self.delivery()
        event = verify_webhook(body, headers, self.SECRET)
        self.assertEqual((event.id, event.seq, event.type), ("ev_1", 7, "room.started"))
        self.assertEqual(event.created_at.microsecond, 123456)
        self.assertEqual(event.data["room"]["name"], "standup")
        self.assertEqual(event.raw["project_id"], "pr_1")

    def test_tampering_and_missing_headers_are_refused(self) -> None:
        body, headers = self.delivery()
        with self.assertRaises(switchboard.WebhookVerificationError):
            verify_webhook(body.replace(b"standup", b"standuq"), headers, self.SECRET)
        with self.assertRaises(switchboard.WebhookVerificationError):
            verify_webhook(body, {k: v for k, v in headers.items() if k != "Webhook-Signature"}, self.SECRET)
        with self.assertRaises(switchboard.WebhookVerificationError):
            verify_webhook(body, {**headers, "Webhook-Signature": "garbage"}, self.SECRET)
        with self.assertRaises(ConfigurationError):
            verify_webhook(body, headers, "")


class Pagination(unittest.TestCase):
    def test_auto_paging_follows_cursors(self) -> None:
        pages = {None: ([1, 2], "a"), "a": ([3, 4], "b"), "b": ([5], None)}
        fetched: list[str] = []

        def fetch(cursor: str) -> Page[int]:
            fetched.append(cursor)
            data, nxt = pages[cursor]
            return Page(data, nxt, fetch)

        first = Page(*pages[None], fetch)
        self.assertEqual(list(first), [1, 2])
        self.assertEqual(list(first.auto_paging_iter()), [1, 2, 3, 4, 5])
        self.assertEqual(fetched, ["a", "b"])
        second = first.next_page()
        assert second is not None
        last = second.next_page()
        assert last is not None
        self.assertFalse(last.has_more)
        self.assertIsNone(last.next_page())


class Scripted:
    """A loopback HTTP server answering from a script of (status, headers, body)."""

    def __init__(self, script: list[tuple[int, dict[str, str], Any]]) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                n = int(self.headers.get("content-length") or 0)
                outer.requests.append(
                    (self.command, self.path, dict(self.headers.items()), self.rfile.read(n))
                )
                status, headers, body = script.pop(0) if script else (500, {}, None)
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if data:
                    self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PATCH = answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


ROOM = {
    "sid": "rm_1",
    "name": "r",
    "created_at": "2026-11-23T12:13:20Z",
    "empty_timeout_s": 300,
    "max_participants": 0,
    "metadata": "",
    "region": None,
    "record": False,
    "num_participants": 0,
    "added_later": 1,
}


def err(code: str, message: str = "m") -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class Transport(unittest.TestCase):
    def serve(
        self, script: list[tuple[int, dict[str, str], Any]]
    ) -> tuple[Scripted, switchboard.Switchboard]:
        s = Scripted(script)
        self.addCleanup(s.close)
        c = switchboard.Switchboard(s.url, "devkey", "secret", max_retries=3)
        c._transport.backoff_s = 0.01
        return s, c

    def test_a_create_is_retried_with_one_idempotency_key(self) -> None:
        s, c = self.serve(
            [
                (503, {}, err("media_unavailable")),
                (429, {"retry-after": "0"}, err("rate_limited")),
                (409, {}, err("idempotency_key_in_use")),
                (201, {}, ROOM),
            ]
        )
        room = c.rooms.create("r", max_participants=0)
        self.assertEqual(room.name, "r")
        self.assertEqual(room.raw["added_later"], 1)
        keys = {r[2]["Idempotency-Key"] for r in s.requests}
        self.assertEqual(len(s.requests), 4)
        self.assertEqual(len(keys), 1, keys)
        self.assertEqual(json.loads(s.requests[0][3]), {"name": "r", "max_participants": 0})
        auth = s.requests[0][2]["Authorization"]
        self.assertEqual(auth, "Basic " + base64.b64encode(b"devkey:secret").decode())

    def test_errors_carry_the_code_and_are_not_retried_when_final(self) -> None:
        s, c = self.serve([(404, {"x-request-id": "req_1"}, err("room_not_found", "there is no room"))])
        with self.assertRaises(switchboard.NotFoundError) as ctx:
            c.rooms.get("a/b c")
        e = ctx.exception
        self.assertEqual((e.status, e.code, e.request_id), (404, "room_not_found", "req_1"))
        self.assertIn("there is no room", str(e))
        self.assertEqual(len(s.requests), 1)
        self.assertEqual(s.requests[0][1], "/v1/rooms/a%2Fb%20c")

    def test_persistent_5xx_gives_up_after_the_retries(self) -> None:
        s, c = self.serve([(500, {}, err("internal_error"))] * 5)
        with self.assertRaises(switchboard.ServerError) as ctx:
            c.rooms.list()
        self.assertEqual(ctx.exception.code, "internal_error")
        self.assertEqual(len(s.requests), 4)

    def test_an_unreachable_server_says_what_to_check(self) -> None:
        c = switchboard.Switchboard("http://127.0.0.1:9", "k", "s", max_retries=1)
        c._transport.backoff_s = 0.01
        with self.assertRaisesRegex(switchboard.ConnectionError, "SWITCHBOARD_URL"):
            c.rooms.list()

    def test_missing_configuration_names_the_variables(self) -> None:
        import os

        saved = {
            k: os.environ.pop(k, None)
            for k in ("SWITCHBOARD_URL", "SWITCHBOARD_API_KEY", "SWITCHBOARD_API_SECRET")
        }
        try:
            with self.assertRaisesRegex(ConfigurationError, "SWITCHBOARD_URL.*SWITCHBOARD_API_KEY"):
                switchboard.Switchboard()
        finally:
            os.environ.update({k: v for k, v in saved.items() if v is not None})


if __name__ == "__main__":
    unittest.main()
