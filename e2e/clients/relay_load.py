"""Holds N concurrent full-duplex WebRTC calls to voxgate for a fixed time (relay CPU benchmark).

Each caller loops a speech WAV into /v1/realtime/calls; with the simulator in echo mode every
caller also receives audio back continuously. Loopback only; stops by itself after --seconds.
Prints one JSON line: calls connected, frames sent/received.
"""
import argparse
import asyncio
import json
import sys
import time

sys.path.insert(0, __import__("os").path.dirname(__file__))
from aiortc_call import SpeechTrack, http, read_wav  # noqa: E402
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription  # noqa: E402


class LoopingTrack(SpeechTrack):
    async def recv(self):
        frame = await super().recv()
        if self.pts - self.offset >= len(self.samples):
            self.offset = self.pts
        return frame


async def one_call(base, samples, stats, stop):
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.createDataChannel("oai-events")
    pc.addTrack(LoopingTrack(samples))

    @pc.on("track")
    def on_track(track):
        async def pull():
            while not stop.is_set():
                try:
                    await track.recv()
                except Exception:
                    return
                stats["frames_received"] += 1
        asyncio.ensure_future(pull())

    await pc.setLocalDescription(await pc.createOffer())
    status, headers, answer = http("POST", base + "/v1/realtime/calls", pc.localDescription.sdp.encode(), "application/sdp")
    if status != 201:
        stats["errors"] += 1
        return
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    stats["calls"] += 1
    await stop.wait()
    http("DELETE", base + headers.get("Location"))
    await pc.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--wav", required=True)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=20)
    args = ap.parse_args()
    samples = read_wav(args.wav)
    stats = {"calls": 0, "errors": 0, "frames_received": 0}
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(one_call(args.base, samples, stats, stop)) for _ in range(args.n)]
    await asyncio.sleep(args.seconds)
    stop.set()
    await asyncio.wait(tasks, timeout=10)
    print(json.dumps(stats))


if __name__ == "__main__":
    asyncio.run(main())
