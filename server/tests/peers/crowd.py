"""Many participants of the WebSocket signaling protocol (docs/signaling.md)
on aiortc in one process, for tests of rooms with many peers.

Usage: crowd.py WS_URL [WS_URL ...]

The first participant publishes a small synthetic video (160x120) and audio;
every one answers the server's subscriber offers and decodes what it
receives. Every 500 ms it prints one JSON line, a list with per participant:
  {"states": {"publisher": S, "subscriber": S},   its connections' states
   "ports": [P, ...],     the ports of the candidates in the server's SDPs
   "video": N, "audio": N,                          frames decoded so far
   "videos": [N, ...]}                      video frames decoded per track
Standard input closing ends it.
"""

import asyncio
import json
import sys

import aiohttp
from aiortc.mediastreams import VideoStreamTrack
from av import VideoFrame

import sdk_peer


class SmallVideo(VideoStreamTrack):
    """A gray 160x120 picture: cheap to encode and to decode twenty times."""

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(width=160, height=120, format="yuv420p")
        for plane in frame.planes:
            plane.update(bytes([128]) * plane.buffer_size)
        frame.pts = pts
        frame.time_base = time_base
        return frame


def ports(sdp):
    return [int(l.split()[5]) for l in sdp.splitlines() if l.startswith("a=candidate:")]


async def participant(session, url, publish, report):
    async with session.ws_connect(url) as ws:
        peer = sdk_peer.Peer(ws)
        report["peer"] = peer
        async for frame in ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            msg = json.loads(frame.data)
            if msg.get("type") in ("offer", "answer"):
                report["ports"].extend(ports(msg["sdp"]))
            await peer.on_message(msg)
            if msg.get("type") == "join" and publish:
                await peer.publish(video=SmallVideo())


def summary(reports):
    out = []
    for r in reports:
        peer = r.get("peer")
        states = {t: pc.connectionState for t, pc in peer.pcs.items()} if peer else {}
        frames = peer.frames if peer else {"video": 0, "audio": 0}
        videos = list(peer.video_tracks.values()) if peer else []
        out.append({"states": states, "ports": r["ports"], "videos": videos, **frames})
    return out


async def main(urls):
    # A participant's own state changes are read from the summary instead.
    sdk_peer.emit = lambda **event: None
    reports = [{"ports": []} for _ in urls]
    async with aiohttp.ClientSession() as session:
        tasks = [
            asyncio.ensure_future(participant(session, url, i == 0, reports[i]))
            for i, url in enumerate(urls)
        ]
        loop = asyncio.get_running_loop()
        stdin_closed = loop.run_in_executor(None, sys.stdin.read)
        while not stdin_closed.done():
            await asyncio.sleep(0.5)
            for t in tasks:
                if t.done() and not t.cancelled() and t.exception():
                    print(json.dumps({"failed": repr(t.exception())}), flush=True)
                    return
            print(json.dumps(summary(reports)), flush=True)
        for t in tasks:
            t.cancel()
        for r in reports:
            peer = r.get("peer")
            for pc in (peer.pcs.values() if peer else []):
                await pc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
