"""An independent WebRTC peer (aiortc) against Switchboard: publishes synthetic
video and audio over WHIP, plays them back over WHEP, and reports what it decoded.

Usage: aiortc_peer.py BASE_URL ROOM PUBLISH_TOKEN VIEW_TOKEN PUBLISHER_IDENTITY
Prints one JSON line: {"video_frames", "audio_frames", "video_size", "whip", "whep"}.
Exits non-zero when anything fails.
"""

import asyncio
import json
import os
import sys

import aioice.ice
import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

# The test runs in a network namespace that has only loopback; aioice skips
# 127.0.0.1 by default, so gather on it explicitly.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


async def signal(session, pc, url, token):
    """Offers `pc` (candidates included) to a WHIP/WHEP endpoint and applies the answer."""
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"}
    async with session.post(url, data=pc.localDescription.sdp, headers=headers) as res:
        body = await res.text()
        if res.status != 201:
            return None, f"HTTP {res.status}: {body}"
        location = res.headers["Location"]
    if os.environ.get("AIORTC_PEER_DEBUG"):
        print(f"--- answer from {url}\n{body}", file=sys.stderr)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
    return location, None


def sends_audio_and_video(sdp):
    """Whether an SDP answer sends a real track in both an audio and a video section.

    A track shows as an `a=msid` line: the direction alone is not enough, since
    webrtc-rs answers `sendonly` for an offered receive-only section even when
    it has no track to put there.
    """
    kinds = set()
    kind = None
    for line in sdp.splitlines():
        if line.startswith("m="):
            kind = line[2:].split(" ")[0]
        elif line.startswith("a=msid:") and kind:
            kinds.add(kind)
    return {"audio", "video"} <= kinds


async def main(base, room, publish_token, view_token, identity):
    counts = {"video_frames": 0, "audio_frames": 0, "video_size": None}
    async with aiohttp.ClientSession() as session:
        publisher = RTCPeerConnection()
        publisher.addTrack(VideoStreamTrack())
        publisher.addTrack(AudioStreamTrack())
        whip, err = await signal(session, publisher, f"{base}/v1/whip/rooms/{room}", publish_token)
        if err:
            raise SystemExit(f"WHIP failed: {err}")

        player = RTCPeerConnection()
        player.addTransceiver("video", direction="recvonly")
        player.addTransceiver("audio", direction="recvonly")
        readers = []

        @player.on("track")
        def on_track(track):
            async def read():
                while True:
                    frame = await track.recv()
                    if track.kind == "video":
                        counts["video_frames"] += 1
                        counts["video_size"] = [frame.width, frame.height]
                    else:
                        counts["audio_frames"] += 1

            readers.append(asyncio.ensure_future(read()))

        # The publisher's tracks appear once its media arrives; retry until then.
        # A WHEP session gets the tracks published when it starts, so wait until
        # the answer sends both audio and video.
        whep, err = None, None
        for _ in range(50):
            whep, err = await signal(session, player, f"{base}/v1/whep/rooms/{room}/participants/{identity}", view_token)
            if whep and sends_audio_and_video(player.remoteDescription.sdp):
                break
            if whep:
                async with session.delete(f"{base}{whep}", headers={"Authorization": f"Bearer {view_token}"}):
                    pass
                whep, err = None, "the answer did not send both audio and video"
            await player.close()
            player = RTCPeerConnection()
            player.addTransceiver("video", direction="recvonly")
            player.addTransceiver("audio", direction="recvonly")
            player.on("track", on_track)
            await asyncio.sleep(0.2)
        if not whep:
            raise SystemExit(f"WHEP failed: {err}")

        for _ in range(150):
            if counts["video_frames"] >= 30 and counts["audio_frames"] >= 50:
                break
            await asyncio.sleep(0.1)

        for location, token in ((whep, view_token), (whip, publish_token)):
            async with session.delete(f"{base}{location}", headers={"Authorization": f"Bearer {token}"}) as res:
                counts["deleted_" + location.split("/")[2]] = res.status
        for r in readers:
            r.cancel()
        await player.close()
        await publisher.close()
    counts["whip"], counts["whep"] = whip, whep
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
