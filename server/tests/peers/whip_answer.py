"""Posts one WHIP offer (aiortc, audio) and prints the answer's SDP.

Usage: whip_answer.py BASE_URL ROOM TOKEN
Media never needs to connect: the caller only reads the answer.
"""

import asyncio
import sys

import aiohttp
from aiortc import RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack


async def main(base, room, token):
    pc = RTCPeerConnection()
    pc.addTrack(AudioStreamTrack())
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/v1/whip/rooms/{room}", data=pc.localDescription.sdp, headers=headers) as res:
            body = await res.text()
            if res.status != 201:
                raise SystemExit(f"WHIP failed: HTTP {res.status}: {body}")
            print(body)
    await pc.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
