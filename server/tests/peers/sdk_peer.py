"""A participant of the WebSocket signaling protocol (docs/signaling.md) on an
independent WebRTC stack (aiortc), driven by a test over standard input.

Usage: sdk_peer.py WS_URL [--publish [--tone]] [--stamped]

With --publish it announces and publishes synthetic video and audio on its
publisher connection: silence, or with --tone a steady tone (a speaker). It answers every subscriber offer and decodes what it
receives. It prints one JSON line per event:
  {"event": "signal", "msg": {...}}     every server message, as received
  {"event": "frames", "video": N, "audio": N, "latency": MS}   decoded so far, every
      200 ms; with --stamped, the median latency of the last 60 stamped frames (or null)
  {"event": "state", "target": T, "state": S}   a connection's state change
  {"event": "data", "label": L, "text": T}       a data message the server sent
and takes one JSON line per command:
  {"send": {...}}   sends the message on the socket
  {"data": TEXT}    sends TEXT on its `_reliable` data channel (publishers only)
  {"leave": true}   sends `leave`, closes and exits
Standard input closing also ends it.
"""

import asyncio
import collections
import json
import os
import sys
import time

import aioice.ice
import aiohttp
import numpy
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from aiortc.sdp import candidate_from_sdp

# The test runs in a network namespace: candidates on loopback, or on the
# address the test names.
HOST = os.environ.get("SDK_PEER_HOST", "127.0.0.1")
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [HOST]


class ToneTrack(AudioStreamTrack):
    """A steady 440 Hz tone at about -12 dBov, which the server hears as speech."""

    async def recv(self):
        frame = await super().recv()
        t = (numpy.arange(frame.samples) + frame.pts) / frame.sample_rate
        tone = (numpy.sin(2 * numpy.pi * 440 * t) * 8000).astype(numpy.int16)
        frame.planes[0].update(tone.tobytes())
        return frame


# With --stamped, each video frame carries the sender's clock (milliseconds,
# modulo 2^16) as 16 black or white squares in a row, and a white bar below
# them (see the regions test's canvas): each decoded frame gives a
# capture-to-decode latency on this machine's one clock.
STAMPED = "--stamped" in sys.argv[2:]


def stamp_latency(frame):
    """Milliseconds from the frame's drawing to now, or None without a stamp."""
    gray = frame.to_ndarray(format="gray")
    h, w = gray.shape
    at = lambda x, y: int(gray[int(y * h / 180), int(x * w / 320)])
    # The bar is white and the rows between are black: otherwise no stamp.
    if at(160, 130) < 160 or at(160, 110) > 96:
        return None
    sent = sum(1 << i for i in range(16) if at(20 * i + 10, 90) > 128)
    now = int(time.time() * 1000) % 65536
    return (now - sent) % 65536


def emit(**event):
    print(json.dumps(event), flush=True)


class Peer:
    def __init__(self, ws):
        self.ws = ws
        self.pcs = {}
        self.waiting = {"publisher": [], "subscriber": []}
        self.frames = {"video": 0, "audio": 0}
        # The latest stamped frames' latencies (with --stamped).
        self.latencies = collections.deque(maxlen=60)
        # Video frames decoded per received track, by the track's id.
        self.video_tracks = {}
        self.readers = []
        # The publisher connection's `_reliable` channel, once publishing.
        self.channel = None

    def pc(self, target):
        if target not in self.pcs:
            pc = RTCPeerConnection()

            @pc.on("connectionstatechange")
            def on_state():
                emit(event="state", target=target, state=pc.connectionState)

            @pc.on("datachannel")
            def on_datachannel(channel):
                @channel.on("message")
                def on_data(text):
                    emit(event="data", label=channel.label, text=text)

            @pc.on("track")
            def on_track(track):
                async def read():
                    while True:
                        try:
                            frame = await track.recv()
                        except Exception:
                            return
                        if STAMPED and track.kind == "video":
                            latency = stamp_latency(frame)
                            if latency is not None and latency < 5000:
                                self.latencies.append(latency)
                        self.frames[track.kind] += 1
                        if track.kind == "video":
                            self.video_tracks[track.id] = self.video_tracks.get(track.id, 0) + 1

                self.readers.append(asyncio.ensure_future(read()))

            self.pcs[target] = pc
        return self.pcs[target]

    async def send(self, msg):
        await self.ws.send_str(json.dumps(msg))

    async def publish(self, video=None, tone=False):
        pc = self.pc("publisher")
        for track, kind, source in (
            (video or VideoStreamTrack(), "video", "camera"),
            (ToneTrack() if tone else AudioStreamTrack(), "audio", "microphone"),
        ):
            pc.addTrack(track)
            await self.send({"type": "add_track", "cid": track.id, "kind": kind, "source": source})
        self.channel = pc.createDataChannel("_reliable")
        await pc.setLocalDescription(await pc.createOffer())
        await self.send({"type": "offer", "sdp": pc.localDescription.sdp})

    async def remote_set(self, target):
        for c in self.waiting[target]:
            await self.add_candidate(target, c)
        self.waiting[target] = []

    async def add_candidate(self, target, c):
        line = c.get("candidate", "")
        if not line:
            return
        candidate = candidate_from_sdp(line.split(":", 1)[1])
        candidate.sdpMid = c.get("sdpMid") or None
        candidate.sdpMLineIndex = c.get("sdpMLineIndex")
        if candidate.sdpMid is None:
            # aiortc finds the transport by mid; the server bundles everything on the first section.
            mids = [t.mid for t in self.pc(target).getTransceivers() if t.mid is not None]
            sctp = self.pc(target).sctp
            candidate.sdpMid = mids[0] if mids else (sctp.mid if sctp else "0")
        await self.pc(target).addIceCandidate(candidate)

    async def on_message(self, msg):
        kind = msg.get("type")
        if kind == "offer":
            pc = self.pc("subscriber")
            await pc.setRemoteDescription(RTCSessionDescription(sdp=msg["sdp"], type="offer"))
            await self.remote_set("subscriber")
            await pc.setLocalDescription(await pc.createAnswer())
            await self.send({"type": "answer", "sdp": pc.localDescription.sdp})
        elif kind == "answer":
            pc = self.pc("publisher")
            await pc.setRemoteDescription(RTCSessionDescription(sdp=msg["sdp"], type="answer"))
            await self.remote_set("publisher")
        elif kind == "candidate":
            target = msg["target"]
            pc = self.pcs.get(target)
            if pc is None or pc.remoteDescription is None:
                self.waiting[target].append(msg["candidate"])
            else:
                await self.add_candidate(target, msg["candidate"])


async def commands(peer):
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        command = json.loads(line)
        if "send" in command:
            await peer.send(command["send"])
        if command.get("publish"):
            # Allowed to publish now (its permissions were changed): it starts.
            await peer.publish()
        if "data" in command and peer.channel is not None:
            peer.channel.send(command["data"])
        if command.get("leave"):
            await peer.send({"type": "leave"})
            return


async def report(peer):
    while True:
        await asyncio.sleep(0.2)
        latency = sorted(peer.latencies)[len(peer.latencies) // 2] if peer.latencies else None
        emit(event="frames", latency=latency, **peer.frames)


async def main(url, publish, tone):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:
            peer = Peer(ws)

            async def receive():
                async for frame in ws:
                    if frame.type != aiohttp.WSMsgType.TEXT:
                        break
                    msg = json.loads(frame.data)
                    emit(event="signal", msg=msg)
                    await peer.on_message(msg)
                    if msg.get("type") == "join" and publish:
                        await peer.publish(tone=tone)

            tasks = [asyncio.ensure_future(t) for t in (receive(), commands(peer), report(peer))]
            done, _ = await asyncio.wait(tasks[:2], return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t.exception():
                    emit(event="failed", error=repr(t.exception()))
            for t in tasks + peer.readers:
                t.cancel()
            for pc in peer.pcs.values():
                await pc.close()
    emit(event="closed")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], "--publish" in sys.argv[2:], "--tone" in sys.argv[2:]))
