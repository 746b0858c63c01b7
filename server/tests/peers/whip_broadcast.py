"""A WHIP broadcaster (aiortc) that stays on air until told to stop.

Usage: whip_broadcast.py BASE_URL ROOM TOKEN
Prints {"location": ...} once its WHIP session is up and its media connected,
then broadcasts synthetic video and audio until a line arrives on standard
input (or standard input closes). It then DELETEs its own session and prints
{"deleted": STATUS}. Exits non-zero when anything fails.
"""

import asyncio
import json
import sys

import aioice.ice
import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

# The test runs in a network namespace that has only loopback.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


async def main(base, room, token):
    auth = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session:
        pc = RTCPeerConnection()
        pc.addTrack(VideoStreamTrack())
        pc.addTrack(AudioStreamTrack())
        await pc.setLocalDescription(await pc.createOffer())
        headers = {"Content-Type": "application/sdp", **auth}
        async with session.post(f"{base}/v1/whip/rooms/{room}", data=pc.localDescription.sdp, headers=headers) as res:
            body = await res.text()
            if res.status != 201:
                raise SystemExit(f"WHIP failed: HTTP {res.status}: {body}")
            location = res.headers["Location"]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
        for _ in range(100):
            if pc.connectionState == "connected":
                break
            await asyncio.sleep(0.1)
        else:
            raise SystemExit(f"media did not connect: {pc.connectionState}")
        print(json.dumps({"location": location}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        async with session.delete(f"{base}{location}", headers=auth) as res:
            print(json.dumps({"deleted": res.status, "state": pc.connectionState}), flush=True)
        await pc.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
