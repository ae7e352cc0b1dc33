"""A real WebRTC voice client (aiortc) for voxgate's e2e tests.

Posts an SDP offer to /v1/realtime/calls, speaks (a loud tone, then silence so server VAD ends the
turn), listens to the answer over RTP, talks on the `oai-events` data channel, and hangs up.
Prints one JSON summary line on stdout. Loopback only; every wait is bounded.
"""
import argparse
import array
import wave
import asyncio
import fractions
import json
import math
import sys
import time
import urllib.request

import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from av import AudioFrame

# aioice drops 127.0.0.1 from host candidates; this test runs on loopback only.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


def read_wav(path):
    """48 kHz mono PCM16 samples of a WAV file."""
    with wave.open(path, "rb") as w:
        assert w.getframerate() == 48000 and w.getnchannels() == 1 and w.getsampwidth() == 2, "need 48 kHz mono s16"
        return array.array("h", w.readframes(w.getnframes()))


class SpeechTrack(MediaStreamTrack):
    """20 ms frames at 48 kHz in real time: the WAV once, then silence.
    `speak_again()` plays the WAV again (a barge-in)."""

    kind = "audio"

    def __init__(self, samples):
        super().__init__()
        self.samples = samples
        self.pts = 0
        self.start = None
        self.offset = 0

    def speak_again(self):
        self.offset = self.pts

    async def recv(self):
        if self.start is None:
            self.start = time.time()
        wait = self.start + self.pts / 48000 - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        samples = 960
        at = self.pts - self.offset
        chunk = self.samples[at:at + samples] if at >= 0 else array.array("h")
        chunk = chunk + array.array("h", [0] * (samples - len(chunk)))
        frame = AudioFrame(format="s16", layout="mono", samples=samples)
        frame.planes[0].update(chunk.tobytes())
        frame.pts = self.pts
        frame.sample_rate = 48000
        frame.time_base = fractions.Fraction(1, 48000)
        self.pts += samples
        return frame


def continuity(events, event_times, arrivals):
    """How continuous the model's audio was at this caller: for each reply played (from
    `output_audio_buffer.started` to `.stopped`), the largest gap between two audio frames arriving
    (what a listener hears as a dropout), and whether the model session behind the call changed
    (`voxgate.session.resumed`) while it played. Also whether any change fell inside a turn: from
    the caller starting to speak to the model's response being done."""
    typed = [(t, e.get("type")) for t, e in zip(event_times, events)]
    resumed = [t for t, ty in typed if ty == "voxgate.session.resumed"]
    replies = []
    start = None
    for t, ty in typed:
        if ty == "output_audio_buffer.started":
            start = t
        elif ty == "output_audio_buffer.stopped" and start is not None:
            # RTP and the data channel race a little: frames up to 60 ms after `stopped` count.
            frames = [a for a in arrivals if start <= a <= t + 0.06]
            gaps = [round((b - a) * 1000, 1) for a, b in zip(frames, frames[1:])]
            replies.append({
                "frames": len(frames),
                "max_gap_ms": max(gaps) if gaps else None,
                "gaps_ms": gaps,
                "rollover": any(start <= r <= t for r in resumed),
            })
            start = None
    turns = []
    begin = None
    for t, ty in typed:
        if ty == "input_audio_buffer.speech_started" and begin is None:
            begin = t
        elif ty == "response.done" and begin is not None:
            turns.append((begin, t))
            begin = None
    inside = [r for r in resumed if any(a < r < b for a, b in turns)]
    return {"replies": replies, "rollovers": len(resumed), "rollovers_inside_a_turn": len(inside)}


def http(method, url, body=None, ctype=None):
    req = urllib.request.Request(url, data=body, method=method)
    if ctype:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()
    except OSError:
        return 0, {}, ""  # voxgate is gone (it was shut down)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--wav", required=True, help="speech to send: 48 kHz mono PCM16")
    ap.add_argument("--delegate", default="")
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--barge-in", action="store_true", help="speak again while the reply plays")
    ap.add_argument("--rpc", action="store_true", help="offer through JSON-RPC thread/realtime/start")
    ap.add_argument("--webrtc-mode", default="", help="voxgate extension: relay or passthrough")
    ap.add_argument("--abandon", action="store_true", help="(rpc) take the answer but never connect")
    ap.add_argument("--stop-after-sdp", action="store_true", help="(rpc) stop right after the answer")
    ap.add_argument("--announce", action="store_true", help="print 'LOCATION <path>' as soon as the call exists")
    ap.add_argument("--hold-until-file", default="", help="stay on the call until this file exists")
    ap.add_argument("--ready-file", default="", help="(--end drain) create this file, then wait to be told")
    ap.add_argument("--turns", type=int, default=1,
                    help="speak again after each reply, for this many turns in all; reports the audio's continuity")
    ap.add_argument("--live", action="store_true", help="place the call as GPT-Live does: POST /v1/live/sessions (JSON)")
    ap.add_argument("--voxgate-events", action="store_true", help="opt into voxgate's own data-channel events")
    ap.add_argument("--end", default="", choices=["", "hangup", "model", "drain"],
                    help="after the reply, end the call (DELETE, or make the model drop) and time how the caller learns of it")
    args = ap.parse_args()

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    events = []
    event_times = []
    arrivals = []
    got_event = asyncio.Event()
    audio = {"frames": 0, "loud_frames": 0}
    channel = pc.createDataChannel("oai-events")

    @channel.on("message")
    def on_message(msg):
        try:
            events.append(json.loads(msg))
        except ValueError:
            events.append({"type": "<not json>"})
        event_times.append(time.monotonic())
        got_event.set()

    if args.voxgate_events:
        @channel.on("open")
        def opt_in():
            channel.send(json.dumps({"type": "voxgate.subscribe_agent_events"}))

    @pc.on("track")
    def on_track(track):
        async def pull():
            while True:
                try:
                    frame = await track.recv()
                except Exception:
                    return
                audio["frames"] += 1
                arrivals.append(time.monotonic())
                pcm = array.array("h", bytes(frame.planes[0]))
                if pcm and max(abs(v) for v in pcm) > 2000:
                    audio["loud_frames"] += 1
        asyncio.ensure_future(pull())

    mic = SpeechTrack(read_wav(args.wav))
    pc.addTrack(mic)
    if args.barge_in:
        barged = {"done": False}

        @channel.on("message")
        def barge(msg):
            if not barged["done"] and '"output_audio_buffer.started"' in msg:
                barged["done"] = True
                asyncio.get_event_loop().call_later(0.3, mic.speak_again)
            if '"output_audio_buffer.cleared"' in msg:
                barged["cleared"] = True
            # Everything voxgate sent before the flush has come out of the caller's jitter buffer
            # by the time the barge-in turn ends (the next reply has not started yet).
            if barged.get("cleared") and '"input_audio_buffer.speech_stopped"' in msg and "heard_at_clear" not in audio:
                audio["heard_at_clear"] = audio["loud_frames"]

                async def count_packets():
                    # RTP packets received for the reply: what voxgate sent before the flush.
                    stats = await pc.getStats()
                    audio["packets_at_clear"] = sum(
                        s.packetsReceived for s in stats.values() if getattr(s, "type", "") == "inbound-rtp")
                asyncio.ensure_future(count_packets())

    await pc.setLocalDescription(await pc.createOffer())
    if args.rpc:
        await rpc_call(args, pc, audio)
        return
    query = "?mode=" + args.webrtc_mode if args.webrtc_mode else ""
    if args.live:
        body = json.dumps({"session": {"instructions": "Be brief.", "audio": {"output": {"voice": "cove"}},
                                       "delegation": {"type": "client"}},
                           "transport": {"type": "webrtc", "sdp": pc.localDescription.sdp}}).encode()
        status, headers, created = http("POST", args.base + "/v1/live/sessions", body, "application/json")
        try:
            created = json.loads(created)
            answer = created["transport"]["sdp"]
        except (ValueError, KeyError, TypeError):
            answer = created
    else:
        status, headers, answer = http("POST", args.base + "/v1/realtime/calls" + query, pc.localDescription.sdp.encode(), "application/sdp")
    summary = {"post_status": status, "location": headers.get("Location"), "content_type": headers.get("Content-Type")}
    if args.live and status == 201:
        summary["session_id"] = created["session"]["id"]
    if status != 201:
        summary["error"] = answer
        print(json.dumps(summary))
        return
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    if args.announce:
        print("LOCATION " + summary["location"], flush=True)

    async def wait_for(pred):
        deadline = time.time() + args.timeout
        while time.time() < deadline:
            if any(pred(e) for e in events):
                return True
            got_event.clear()
            try:
                await asyncio.wait_for(got_event.wait(), timeout=max(0.01, deadline - time.time()))
            except asyncio.TimeoutError:
                break
        return False

    # A GPT-Live model's events have no "done": its transcript deltas say it spoke.
    summary["spoken_reply"] = await wait_for(lambda e: e.get("type") in (
        "response.output_audio_transcript.done", "session.output_transcript.delta"))
    if args.barge_in:
        summary["cleared"] = await wait_for(lambda e: e.get("type") == "output_audio_buffer.cleared")
        deadline = time.time() + args.timeout
        while "packets_at_clear" not in audio and time.time() < deadline:
            await asyncio.sleep(0.02)
    summary["playback_stopped"] = await wait_for(lambda e: e.get("type") == "output_audio_buffer.stopped")
    if args.turns > 1:
        def stopped_count():
            return sum(1 for e in events if e.get("type") == "output_audio_buffer.stopped")
        for turn in range(1, args.turns):
            mic.speak_again()
            deadline = time.time() + args.timeout
            while stopped_count() <= turn and time.time() < deadline:
                got_event.clear()
                try:
                    await asyncio.wait_for(got_event.wait(), timeout=max(0.01, deadline - time.time()))
                except asyncio.TimeoutError:
                    break
            if stopped_count() <= turn:
                summary["turns_error"] = f"no reply was heard to turn {turn}"
                break
        summary["turns_heard"] = stopped_count()
        summary["continuity"] = continuity(events, event_times, arrivals)
    if args.delegate:
        channel.send(json.dumps({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                     "content": [{"type": "input_text", "text": args.delegate}]}}))
        channel.send(json.dumps({"type": "response.create"}))
        summary["delegated_reply"] = await wait_for(
            lambda e: e.get("type") == "response.output_audio_transcript.done" and "Here is what I found" in e.get("transcript", ""))
    if args.end:
        states = []
        pc.on("connectionstatechange", lambda: states.append((time.time(), pc.connectionState)))
        t0 = time.time()
        if args.end == "hangup":
            status, _, _ = http("DELETE", args.base + summary["location"])
            summary["end_delete_status"] = status
        elif args.end == "drain":
            # The test shuts voxgate down (SIGTERM) once this file exists.
            open(args.ready_file, "w").close()
        else:
            channel.send(json.dumps({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                         "content": [{"type": "input_text", "text": "close: now"}]}}))
            channel.send(json.dumps({"type": "response.create"}))
        told = await wait_for(lambda e: e.get("type") == "voxgate.session.closed")
        summary["end_told"] = told
        summary["end_told_after_s"] = round(time.time() - t0, 3) if told else None
        summary["end_event"] = next((e for e in events if e.get("type") == "voxgate.session.closed"), None)
        deadline = time.time() + 10
        while not any(st in ("closed", "failed") for _, st in states) and time.time() < deadline:
            await asyncio.sleep(0.02)
        closed = [at for at, st in states if st in ("closed", "failed")]
        summary["end_peer_closed_after_s"] = round(closed[0] - t0, 3) if closed else None
    if args.hold_until_file:
        deadline = time.time() + args.timeout
        while not __import__("os").path.exists(args.hold_until_file) and time.time() < deadline:
            await asyncio.sleep(0.05)
    summary["audio"] = audio
    summary["event_types"] = [e.get("type") for e in events]
    summary["transcripts"] = [e.get("transcript") for e in events if e.get("type", "").endswith("transcript.done")
                              or e.get("type") == "conversation.item.input_audio_transcription.completed"]
    summary["events_json"] = json.dumps(events)
    status, _, _ = http("DELETE", args.base + summary["location"])
    summary["delete_status"] = status
    await pc.close()
    print(json.dumps(summary))


async def rpc_call(args, pc, audio):
    """thread/realtime/start with transport webrtc over the JSON-RPC websocket."""
    import websockets

    summary = {"notifications": []}
    url = args.base.replace("http://", "ws://") + "/rpc"
    async with websockets.connect(url, max_size=None) as ws:
        async def send(obj):
            await ws.send(json.dumps(obj))

        async def until(pred):
            deadline = time.time() + args.timeout
            while time.time() < deadline:
                msg = json.loads(await asyncio.wait_for(ws.recv(), timeout=max(0.01, deadline - time.time())))
                if "method" in msg:
                    summary["notifications"].append(msg["method"])
                if pred(msg):
                    return msg
            raise TimeoutError("no matching message")

        await send({"id": 1, "method": "initialize", "params": {"clientInfo": {"name": "aiortc", "version": "1"},
                    "capabilities": {"experimentalApi": True}}})
        await until(lambda m: m.get("id") == 1)
        params = {"threadId": "rtc-thread", "outputModality": "audio",
                  "transport": {"type": "webrtc", "sdp": pc.localDescription.sdp}}
        if args.webrtc_mode:
            params["webrtcMode"] = args.webrtc_mode
        await send({"id": 2, "method": "thread/realtime/start", "params": params})
        sdp = await until(lambda m: m.get("method") == "thread/realtime/sdp")
        if args.stop_after_sdp:
            await send({"id": 3, "method": "thread/realtime/stop", "params": {"threadId": "rtc-thread"}})
            closed = await until(lambda m: m.get("method") == "thread/realtime/closed")
            summary["closed_reason"] = closed["params"]["reason"]
            await pc.close()
            print(json.dumps(summary))
            return
        if args.abandon:
            err = await until(lambda m: m.get("method") == "thread/realtime/error")
            closed = await until(lambda m: m.get("method") == "thread/realtime/closed")
            summary["error"] = err["params"]["message"]
            summary["closed_reason"] = closed["params"]["reason"]
            print(json.dumps(summary))
            return
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp["params"]["sdp"], type="answer"))
        done = await until(lambda m: m.get("method") == "thread/realtime/transcript/done" and m["params"]["role"] == "assistant")
        summary["assistant_text"] = done["params"]["text"]
        # Listen until the paced reply has been heard over RTP (bounded).
        deadline = time.time() + args.timeout
        while audio["loud_frames"] < 10 and time.time() < deadline:
            await asyncio.sleep(0.05)
        await send({"id": 3, "method": "thread/realtime/stop", "params": {"threadId": "rtc-thread"}})
        closed = await until(lambda m: m.get("method") == "thread/realtime/closed")
        summary["closed_reason"] = closed["params"]["reason"]
    summary["audio"] = audio
    await pc.close()
    print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main())
