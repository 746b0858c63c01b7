"""The SDK against a real server (``SWITCHBOARD_URL``, started with ``--dev``):
rooms, a token signed offline that the media node accepts, a real webhook
verified, paging through events, and every documented operation covered."""

from __future__ import annotations

import dataclasses
import json
import re
import unittest
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import switchboard
import switchboard.models
from switchboard import AccessToken, Grants
from _support import KEY, SECRET, URL, Receiver, Refused, Signaling, client, eventually, needs_server, unique


@needs_server
class Rooms(unittest.TestCase):
    def test_create_read_update_list_delete(self) -> None:
        c = client()
        name = unique("py-room")
        room = c.rooms.create(name, max_participants=3, metadata="hi")
        self.assertEqual((room.name, room.max_participants, room.metadata), (name, 3, "hi"))
        self.assertTrue(room.sid.startswith("rm_"))
        self.assertIsNotNone(room.created_at.tzinfo)
        self.assertEqual(c.rooms.get(name).sid, room.sid)
        self.assertEqual(c.rooms.update(name, metadata="changed").metadata, "changed")
        self.assertIn(name, [r.name for r in c.rooms.list(limit=100).auto_paging_iter()])
        with self.assertRaises(switchboard.ConflictError) as e:
            c.rooms.create(name)
        self.assertEqual(e.exception.code, "room_exists")
        c.rooms.delete(name)
        with self.assertRaises(switchboard.NotFoundError) as e2:
            c.rooms.get(name)
        self.assertEqual(e2.exception.code, "room_not_found")

    def test_an_idempotency_key_makes_a_repeated_create_return_the_first_room(self) -> None:
        c = client()
        key = unique("idem")
        first = c.rooms.create(idempotency_key=key)
        again = c.rooms.create(idempotency_key=key)
        self.assertEqual(first.sid, again.sid)
        with self.assertRaises(switchboard.UnprocessableError) as e:
            c.rooms.create(unique("other"), idempotency_key=key)
        self.assertEqual(e.exception.code, "idempotency_key_reused")
        c.rooms.delete(first.name)

    def test_wrong_credentials_raise_authentication_error(self) -> None:
        bad = switchboard.Switchboard(URL, KEY, SECRET + "x")
        with self.assertRaises(switchboard.AuthenticationError) as e:
            bad.rooms.list()
        self.assertEqual(e.exception.code, "unauthorized")
        self.assertIn("SWITCHBOARD_API_SECRET", str(e.exception))


@needs_server
class Tokens(unittest.TestCase):
    def test_a_token_signed_offline_joins_the_room_on_the_media_node(self) -> None:
        c = client()
        room = c.rooms.create(unique("py-join")).name
        identity = unique("ann")
        token = AccessToken(KEY, SECRET, room=room, identity=identity, name="Ann", metadata="m").to_jwt()

        # The API's route lookup accepts it and names the media node...
        route = c.tokens.route(token)
        self.assertRegex(route.url, r"^wss?://.+/rtc$")
        # ...which lets the participant in: its first message is `join`.
        ws = Signaling(route.url, token)
        try:
            join = ws.recv_type("join")
            self.assertEqual(join["room"]["name"], room)
            self.assertEqual(join["participant"]["identity"], identity)
            self.assertEqual(join["participant"]["name"], "Ann")
            p = eventually(
                lambda: [p for p in c.participants.list(room) if p.identity == identity], what="the join"
            )[0]
            self.assertEqual((p.name, p.metadata), ("Ann", "m"))
            self.assertTrue(p.permissions.can_publish)
            self.assertEqual(c.participants.get(room, identity).sid, p.sid)
            updated = c.participants.update(room, identity, metadata="new")
            self.assertEqual(updated.metadata, "new")
        finally:
            ws.leave()
        joined = eventually(
            lambda: [
                e
                for e in c.events.list(type="participant.joined", room=room).auto_paging_iter()
                if e.data["participant"]["identity"] == identity
            ],
            what="participant.joined",
        )
        self.assertEqual(len(joined), 1)
        c.rooms.delete(room)

    def test_a_token_signed_with_another_secret_is_refused(self) -> None:
        c = client()
        room = c.rooms.create(unique("py-forged")).name
        forged = AccessToken(KEY, SECRET + "-not", room=room, identity="mallory").to_jwt()
        with self.assertRaises(switchboard.AuthenticationError) as e:
            c.tokens.route(forged)
        self.assertEqual(e.exception.code, "invalid_token")
        url = c.tokens.route(c.tokens.sign(room, "x")).url
        with self.assertRaises(Refused) as r:
            Signaling(url, forged)
        self.assertEqual(r.exception.status, 401)
        # Grants hold on the media node: without room_create, no room, no join.
        missing = unique("py-missing")
        with self.assertRaises(Refused) as r:
            Signaling(url, c.tokens.sign(missing, "ann"))
        self.assertEqual(r.exception.status, 404)
        c.rooms.delete(room)

    def test_the_server_signs_tokens_with_the_same_claims(self) -> None:
        c = client()
        room = c.rooms.create(unique("py-srv")).name
        placed = c.tokens.create(room, "bob", grants=Grants(can_publish=False), ttl_s=600)
        self.assertRegex(placed.url, r"^wss?://.+/rtc$")
        claims = switchboard.verify_access_token(placed.token, SECRET)
        self.assertEqual((claims.iss, claims.sub, claims.room), (KEY, "bob", room))
        self.assertFalse(claims.grants.can_publish)
        self.assertEqual(claims.exp - claims.iat, 600)
        offline = switchboard.verify_access_token(
            AccessToken(
                KEY, SECRET, room=room, identity="bob", grants=Grants(can_publish=False), ttl_s=600
            ).to_jwt(),
            SECRET,
        )
        self.assertEqual(offline.grants, claims.grants)
        c.rooms.delete(room)


@needs_server
class Webhooks(unittest.TestCase):
    def test_a_real_delivery_verifies_with_the_endpoints_secret(self) -> None:
        c = client()
        receiver = Receiver()
        self.addCleanup(receiver.close)
        hook = c.webhooks.create(receiver.url, ["room.started", "webhook.test"], description="sdk test")
        self.addCleanup(c.webhooks.delete, hook.id)
        self.assertTrue(hook.secret.startswith("whsec_"))
        self.assertEqual(c.webhooks.get(hook.id).url, receiver.url)

        room = c.rooms.create(unique("py-hook")).name
        while True:
            headers, body = receiver.next()
            event = switchboard.verify_webhook(body, headers, hook.secret)
            if event.type == "room.started" and event.data["room"]["name"] == room:
                break
        self.assertEqual(headers["webhook-id"], event.id)
        self.assertEqual(c.events.get(event.id).seq, event.seq)
        # A delivery signed with another endpoint's secret, or altered, is refused.
        with self.assertRaises(switchboard.WebhookVerificationError):
            switchboard.verify_webhook(body.replace(room.encode(), b"elsewhere"), headers, hook.secret)
        other = c.webhooks.create(receiver.url, ["webhook.test"], enabled=False)
        self.addCleanup(c.webhooks.delete, other.id)
        with self.assertRaises(switchboard.WebhookVerificationError):
            c.webhooks.verify(body, headers, other.secret)

        sent = c.webhooks.test(hook.id)
        while True:
            headers, body = receiver.next()
            event = c.webhooks.verify(body, headers, hook.secret)
            if event.id == sent.event_id:
                break
        self.assertEqual(event.type, "webhook.test")
        deliveries = eventually(
            lambda: [
                d
                for d in c.webhooks.deliveries(hook.id).auto_paging_iter()
                if d.event_id == sent.event_id and d.status == "succeeded"
            ],
            what="the delivery log",
        )
        self.assertTrue(deliveries[0].attempts[0].succeeded)
        self.assertIn(hook.id, [d.webhook_id for d in c.events.deliveries(sent.event_id)])
        c.rooms.delete(room)


@needs_server
class Events(unittest.TestCase):
    def test_paging_through_events(self) -> None:
        c = client()
        since = datetime.now(timezone.utc) - timedelta(seconds=5)
        prefix = unique("py-page")
        names = [f"{prefix}-{i}" for i in range(5)]
        for n in names:
            c.rooms.create(n)
        page: switchboard.Page[switchboard.Event] | None = c.events.list(
            type="room.started", since=since, limit=2
        )
        seen: list[switchboard.Event] = []
        pages = 0
        while page is not None:
            pages += 1
            self.assertLessEqual(len(page), 2)
            seen += [e for e in page if e.data["room"]["name"].startswith(prefix)]
            page = page.next_page()
        self.assertEqual([e.data["room"]["name"] for e in seen], names)
        self.assertGreaterEqual(pages, 3)
        seqs = [e.seq for e in seen]
        self.assertEqual(seqs, sorted(seqs))
        all_started = list(c.events.list(type="room.started", since=since, limit=2).auto_paging_iter())
        self.assertEqual(
            [e.id for e in all_started if e.data["room"]["name"].startswith(prefix)], [e.id for e in seen]
        )
        # Resuming from a saved cursor reads only what came after it.
        first = c.events.list(type="room.started", since=since, limit=1)
        rest = list(
            c.events.list(type="room.started", since=since, cursor=first.next_cursor).auto_paging_iter()
        )
        self.assertEqual([first[0].id] + [e.id for e in rest], [e.id for e in all_started])
        with self.assertRaises(switchboard.BadRequestError) as e:
            c.events.list(type="no.such")
        self.assertEqual(e.exception.code, "invalid_event_type")
        for n in names:
            c.rooms.delete(n)


def openapi() -> dict:
    with urllib.request.urlopen(f"{URL}/v1/openapi.json", timeout=30) as r:
        return json.load(r)


#: Models whose OpenAPI schema has another name.
SCHEMA_OF = {
    "Participant": "ParticipantInfo",
    "Webhook": "WebhookView",
    "Attempt": "AttemptView",
    "Delivery": "DeliveryView",
    "Function": "FunctionView",
    "FunctionVersion": "VersionView",
    "Invocation": "InvocationView",
    "KvEntry": "Entry",
    "UsageBucket": "Bucket",
    "Session": "SessionView",
    "Suspension": "SuspensionView",
    "StripeReport": "ReportView",
    "Project": "ProjectView",
    "ApiKey": "ApiKeyView",
    "Route": "RouteResponse",
}

#: WHIP and WHEP are media protocols (an SDP offer in, an answer out) that
#: WebRTC stacks and encoders speak with an access token; no server SDK method.
MEDIA_PROTOCOLS = ("/v1/whip/", "/v1/whep/")


@needs_server
class Coverage(unittest.TestCase):
    def test_every_documented_operation_has_a_method(self) -> None:
        documented = {
            (method.upper(), path)
            for path, ops in openapi()["paths"].items()
            if path.startswith("/v1/") and not path.startswith(MEDIA_PROTOCOLS)
            for method in ops
            if method in ("get", "post", "put", "patch", "delete")
        }
        src = Path(switchboard.__file__).parent
        called = set()
        for f in src.rglob("*.py"):
            called |= set(re.findall(r'"(GET|POST|PUT|PATCH|DELETE)",\s*"(/v1/[^"]*)"', f.read_text()))
        self.assertEqual(sorted(documented - called), [], "operations the SDK lacks")
        self.assertEqual(sorted(called - documented), [], "SDK calls the document does not list")

    def test_every_model_has_the_fields_of_its_schema(self) -> None:
        schemas = openapi()["components"]["schemas"]

        def properties(schema: dict) -> set[str]:
            if "$ref" in schema:
                return properties(schemas[schema["$ref"].rsplit("/", 1)[-1]])
            out = set(schema.get("properties", {}))
            for key in ("allOf", "oneOf", "anyOf"):
                for sub in schema.get(key, []):
                    out |= properties(sub)
            return out

        for name in dir(switchboard.models):
            cls = getattr(switchboard.models, name)
            if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)) or name == "Model":
                continue
            with self.subTest(model=name):
                schema = SCHEMA_OF.get(name, name)
                self.assertIn(schema, schemas)
                fields = {f.metadata.get("json", f.name) for f in dataclasses.fields(cls)} - {"raw"}
                self.assertEqual(fields, properties(schemas[schema]))

    def test_resources_read_as_typed_models(self) -> None:
        c = client()
        project = c.project.get()
        self.assertTrue(project.id.startswith("pr_"))
        self.assertIn(
            c.project.update(function_failure_policy=project.function_failure_policy).id, project.id
        )
        self.assertTrue(any(k.id == KEY for k in c.api_keys.list()))
        report = c.usage.get(granularity="day")
        self.assertIsInstance(report.meters, list)
        self.assertIsNotNone(report.from_)
        list(c.usage.sessions(limit=5))
        preview = c.billing.preview()
        self.assertRegex(preview.period, r"^\d{4}-\d{2}$")
        self.assertIsInstance(preview.invoice.total_cents, int)
        self.assertIsInstance(list(c.functions.list().auto_paging_iter()), list)
        self.assertIsInstance(list(c.recordings.list().auto_paging_iter()), list)
        key = unique("kv")
        c.kv.set(key, "v")
        self.assertEqual(c.kv.get(key), "v")
        c.kv.delete(key)
        with self.assertRaises(switchboard.NotFoundError):
            c.kv.get(key)


if __name__ == "__main__":
    unittest.main()
