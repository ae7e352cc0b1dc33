#!/usr/bin/env python3
"""Write the seed corpora in fuzz/seeds/<target>/ from proto-fixtures/ and a real aiortc offer.

Run from the repository root: python3 fuzz/make_seeds.py (needs aiortc for the WebRTC offer).
The seeds are committed; `cargo test --test fuzz_seeds` replays them through voxgate::fuzz.
"""
import asyncio
import hashlib
import json
import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parent.parent
SEEDS = ROOT / "fuzz" / "seeds"


def write(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


async def aiortc_offer():
    from aiortc import RTCPeerConnection
    from aiortc.mediastreams import AudioStreamTrack

    pc = RTCPeerConnection()
    pc.addTrack(AudioStreamTrack())
    pc.createDataChannel("oai-events")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


def fixtures(version):
    base = ROOT / "proto-fixtures" / version
    inbound = [json.loads(l)["in"] for l in open(base / "inbound.jsonl") if l.strip()]
    scenario = []
    for f in sorted(base.glob("scenario_*.jsonl")):
        scenario.append([json.loads(l) for l in open(f) if l.strip()])
    return inbound, scenario


def op_text(op, text):
    raw = text.encode()[:65535]
    return bytes([op]) + struct.pack("<H", len(raw)) + raw


def main():
    offer = asyncio.run(aiortc_offer())
    no_audio = offer.split("m=audio")[0] + "m=application" + offer.split("m=application")[1]
    for sdp in [offer, no_audio, offer.replace("sha-256", "md5"), offer.replace("opus/48000/2", "x" * 40 + "/8000")]:
        write("sdp_offer", sdp)
    write("offer_form", "application/sdp\n" + offer)
    boundary = "voxgateXYZ"
    session = json.dumps({"type": "realtime", "instructions": "be brief", "audio": {"output": {"voice": "marin"}}})
    form = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"sdp\"\r\nContent-Type: application/sdp\r\n\r\n{offer}\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"session\"\r\nContent-Type: application/json\r\n\r\n{session}\r\n"
        f"--{boundary}--\r\n"
    )
    write("offer_form", f"multipart/form-data; boundary={boundary}\n{form}")

    rpc = [
        {"id": 1, "method": "initialize", "params": {"clientInfo": {"name": "c", "version": "1"}, "capabilities": {"experimentalApi": True, "optOutNotificationMethods": ["thread/realtime/outputAudio/delta"]}}},
        {"id": 2, "method": "thread/realtime/start", "params": {"threadId": "t", "prompt": "hi", "outputModality": "audio", "version": "v2", "voice": "marin"}},
        {"id": 3, "method": "thread/realtime/start", "params": {"threadId": "t", "prompt": None, "version": "v1", "transport": {"type": "webrtc", "sdp": offer}}},
        {"id": "a", "method": "thread/realtime/appendAudio", "params": {"threadId": "t", "audio": {"data": "AAAA", "sampleRate": 24000, "numChannels": 1, "samplesPerChannel": 2}}},
        {"id": 4, "method": "thread/realtime/appendText", "params": {"threadId": "t", "text": "hello", "role": "user"}},
        {"id": 5, "method": "thread/realtime/stop", "params": {"threadId": "t"}},
        {"id": 6, "method": "thread/realtime/listVoices"},
        {"id": 7, "method": "thread/realtime/start", "params": {"threadId": "t"}, "trace": {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}},
        {"method": "initialized"},
        {"id": 8, "result": {}},
    ]
    for m in rpc:
        write("rpc_message", json.dumps(m))
    write("rpc_message", '{"id":9,"method":')

    face = []
    for version, flag in [("v1", 1), ("v2", 0)]:
        inbound, scenarios = fixtures(version)
        for text in inbound:
            write("model_event", text)
        for steps in scenarios:
            for rpc_face in [0, 2]:
                ops = bytes([flag | rpc_face]) + bytes([3])
                for s in steps:
                    if "model" in s:
                        ops += op_text(0, s["model"])
                    elif "agent_message" in s:
                        ops += op_text(6, s["agent_message"].get("text", "working"))
                    elif "agent_end" in s:
                        ops += op_text(7, "failed")
                    elif "stop" in s:
                        ops += bytes([8])
                face.append(ops)
        client = [
            {"type": "session.update", "session": {"type": "realtime", "instructions": "x", "tools": []}},
            {"type": "response.create", "response": {"instructions": "say hi", "conversation": "none"}},
            {"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}},
            {"type": "input_audio_buffer.append", "audio": "AAAA"},
            {"type": "bogus"},
        ]
        ops = bytes([flag, 3]) + b"".join(op_text(1, json.dumps(c)) for c in client) + bytes([2, 50])
        face.append(ops)
    for ops in face:
        write("openai_face", ops)

    ndjson = "\n".join(json.dumps(l) for l in [{"type": "message", "text": "working"}, {"type": "message", "text": "done it"}, {"type": "done"}])
    for seed in [0, 3, 16]:
        write("webhook_ndjson", bytes([seed]) + ndjson.encode())
    write("webhook_ndjson", b"\x05" + b'{"type":"error","message":"no"}\r\n{"type":"x"}\n')


if __name__ == "__main__":
    main()
