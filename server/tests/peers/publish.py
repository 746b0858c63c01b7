"""An independent publisher (aiortc): sends known media over WHIP for a set
time, then leaves. The video is a moving test pattern encoded as VP8 (or
H.264), the audio a 440 Hz tone encoded as Opus, both by aiortc's encoders,
so what a recorder writes can be decoded and timed.

Usage: publish.py BASE_URL ROOM TOKEN SECONDS [--codec H264]
                  [--watch IDENTITY VIEW_TOKEN]
Prints one JSON line: for each kind, the wall-clock seconds of the first and
last frame handed to the encoder and how many there were. With --watch it also
plays the publisher IDENTITY back over WHEP and reports when each decoded
video frame arrived ("watched"), to show forwarding went on.
Exits non-zero when anything fails.
"""

import argparse

import asyncio
import fractions
import json
import math
import sys
import time

import aioice.ice
import aiohttp
import numpy
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from av import AudioFrame, VideoFrame

# The tests may run in a network namespace with only loopback; aioice skips
# 127.0.0.1 by default, so gather on it explicitly.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

VIDEO_RATE = 90000
FPS = 30
SAMPLE_RATE = 48000
SAMPLES = 960  # 20 ms


class Timed(MediaStreamTrack):
    """A track that paces its frames in real time and notes when each went out."""

    def __init__(self, stats):
        super().__init__()
        self.stats = stats
        self.start = None
        self.count = 0

    async def pace(self, period):
        if self.start is None:
            self.start = time.time()
        due = self.start + self.count * period
        await asyncio.sleep(max(0, due - time.time()))
        now = time.time()
        self.stats.setdefault("first", now)
        self.stats["last"] = now
        self.stats["frames"] = self.count + 1
        self.count += 1
        return self.count - 1


class Pattern(Timed):
    kind = "video"

    async def recv(self):
        n = await self.pace(1 / FPS)
        y = numpy.arange(480, dtype=numpy.uint16).reshape(480, 1)
        x = numpy.arange(640, dtype=numpy.uint16).reshape(1, 640)
        img = numpy.zeros((480, 640, 3), dtype=numpy.uint8)
        img[:, :, 0] = ((x + 4 * n) % 256).astype(numpy.uint8)
        img[:, :, 1] = ((y + 2 * n) % 256).astype(numpy.uint8)
        img[:, :, 2] = ((x + y) % 256).astype(numpy.uint8)
        frame = VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = n * (VIDEO_RATE // FPS)
        frame.time_base = fractions.Fraction(1, VIDEO_RATE)
        return frame


class Tone(Timed):
    kind = "audio"

    async def recv(self):
        n = await self.pace(SAMPLES / SAMPLE_RATE)
        t = (numpy.arange(SAMPLES) + n * SAMPLES) / SAMPLE_RATE
        samples = (0.3 * 32767 * numpy.sin(2 * math.pi * 440 * t)).astype(numpy.int16)
        frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = n * SAMPLES
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        return frame


def sends_video(sdp):
    """Whether an SDP answer sends a real video track (an `a=msid` line in a video section)."""
    kind = None
    for line in sdp.splitlines():
        if line.startswith("m="):
            kind = line[2:].split(" ")[0]
        elif line.startswith("a=msid:") and kind == "video":
            return True
    return False


async def watch(session, base, room, identity, token, arrivals):
    """Plays `identity` back over WHEP, noting when each video frame decodes.

    The publisher's track appears in the room once its media reaches the
    server, so a session that comes back without it is dropped and tried again.
    """
    headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"}
    url = f"{base}/v1/whep/rooms/{room}/participants/{identity}"
    for _ in range(50):
        player = RTCPeerConnection()
        player.addTransceiver("video", direction="recvonly")

        @player.on("track")
        def on_track(track):
            async def read():
                while True:
                    await track.recv()
                    arrivals.append(time.time())

            asyncio.ensure_future(read())

        await player.setLocalDescription(await player.createOffer())
        async with session.post(url, data=player.localDescription.sdp, headers=headers) as res:
            body = await res.text()
            location = res.headers.get("Location")
        if res.status == 201 and sends_video(body):
            await player.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
            return player
        if location:
            async with session.delete(f"{base}{location}", headers={"Authorization": f"Bearer {token}"}):
                pass
        await player.close()
        await asyncio.sleep(0.2)
    raise SystemExit(f"WHEP never offered {identity}'s video")


async def main(args):
    stats = {"video": {}, "audio": {}}
    pc = RTCPeerConnection()
    video = pc.addTransceiver(Pattern(stats["video"]), direction="sendonly")
    prefs = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == f"video/{args.codec}"]
    if not prefs:
        raise SystemExit(f"aiortc cannot send {args.codec}")
    video.setCodecPreferences(prefs)
    pc.addTransceiver(Tone(stats["audio"]), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {args.token}"}
    player = None
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{args.base}/v1/whip/rooms/{args.room}", data=pc.localDescription.sdp, headers=headers) as res:
            body = await res.text()
            if res.status != 201:
                raise SystemExit(f"WHIP failed: HTTP {res.status}: {body}")
            location = res.headers["Location"]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
        for _ in range(100):
            if stats["video"].get("first") and stats["audio"].get("first"):
                break
            await asyncio.sleep(0.1)
        else:
            raise SystemExit("media never started flowing")
        if args.watch:
            stats["watched"] = []
            player = await watch(session, args.base, args.room, args.watch[0], args.watch[1], stats["watched"])
        await asyncio.sleep(args.seconds)
        await pc.close()
        if player:
            await player.close()
        async with session.delete(f"{args.base}{location}", headers={"Authorization": f"Bearer {args.token}"}) as res:
            stats["deleted"] = res.status
    print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("room")
    parser.add_argument("token")
    parser.add_argument("seconds", type=float)
    parser.add_argument("--codec", default="VP8")
    parser.add_argument("--watch", nargs=2, metavar=("IDENTITY", "VIEW_TOKEN"))
    asyncio.run(main(parser.parse_args()))
