"""The official OpenAI Python SDK as a voxgate client: only the websocket base URL changes.

Runs one realtime session through voxgate to the simulator: session.update (with a client tool),
audio appends, a spoken reply, a delegated request answered server-side, and a call of the
client's own tool. Every server event is validated strictly against the SDK's typed models.
Prints one JSON summary line.
"""
import argparse
import asyncio
import base64
import json
import math

from openai import AsyncOpenAI
from openai.types.realtime import RealtimeServerEvent
from pydantic import TypeAdapter

EVENTS = TypeAdapter(RealtimeServerEvent)


def tone(ms, loud):
    out = bytearray()
    for i in range(ms * 24):
        v = int(8000 * math.sin(2 * math.pi * 220 * i / 24000)) if loud else 0
        out += v.to_bytes(2, "little", signed=True)
    return base64.b64encode(bytes(out)).decode()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ws", required=True, help="websocket base URL, e.g. ws://127.0.0.1:8080/v1")
    ap.add_argument("--timeout", type=float, default=20)
    args = ap.parse_args()
    client = AsyncOpenAI(api_key="sk-client-test", websocket_base_url=args.ws)
    summary = SUMMARY
    summary.update({"types": [], "invalid": [], "transcripts": [], "audio_bytes": 0,
                    "empty_responses": [], "errors": []})
    # Events seen per open response: a response.done with none is an empty response.
    open_responses = {}
    async with client.realtime.connect(model="gpt-realtime") as conn:
        async def until(pred):
            while True:
                raw = await asyncio.wait_for(conn.recv_bytes(), timeout=args.timeout)
                data = json.loads(raw)
                try:
                    event = EVENTS.validate_python(data, strict=False)
                except Exception as e:  # a model the SDK cannot parse
                    summary["invalid"].append({"type": data.get("type"), "error": str(e)[:300]})
                    continue
                summary["types"].append(event.type)
                if event.type == "response.created":
                    open_responses[event.response.id] = 0
                elif event.type == "response.done":
                    if open_responses.pop(event.response.id, 1) == 0:
                        summary["empty_responses"].append(event.response.id)
                elif getattr(event, "response_id", None) in open_responses:
                    open_responses[event.response_id] += 1
                if event.type == "error":
                    summary["errors"].append(event.error.message)
                if event.type == "response.output_audio.delta":
                    summary["audio_bytes"] += len(base64.b64decode(event.delta))
                if event.type == "response.output_audio_transcript.done":
                    summary["transcripts"].append(event.transcript)
                if event.type == "session.updated":
                    summary["tools"] = [t.name for t in (event.session.tools or []) if getattr(t, "name", None)]
                if pred(event):
                    return event

        await conn.session.update(session={
            "type": "realtime",
            "instructions": "You are a test.",
            "tools": [{"type": "function", "name": "lookup_order", "description": "Look up an order.",
                       "parameters": {"type": "object", "properties": {"id": {"type": "string"}}}}],
        })
        await until(lambda e: e.type == "session.updated" and e.session.instructions == "You are a test.")
        # Speak: loud audio, then enough silence for server VAD to end the turn.
        for _ in range(5):
            await conn.input_audio_buffer.append(audio=tone(100, True))
        for _ in range(6):
            await conn.input_audio_buffer.append(audio=tone(100, False))
        await until(lambda e: e.type == "response.done")
        # A delegated request: voxgate answers background_agent server-side.
        await conn.conversation.item.create(item={"type": "message", "role": "user",
                                                  "content": [{"type": "input_text", "text": "delegate: count the files"}]})
        await conn.response.create()
        await until(lambda e: e.type == "response.output_audio_transcript.done" and "Here is what I found" in e.transcript)
        # The client's own tool: the call reaches the client, the client answers it.
        await conn.conversation.item.create(item={"type": "message", "role": "user",
                                                  "content": [{"type": "input_text", "text": "call: lookup_order 42"}]})
        await conn.response.create()
        call = await until(lambda e: e.type == "conversation.item.done" and e.item.type == "function_call")
        summary["client_call"] = {"name": call.item.name, "arguments": call.item.arguments}
        await conn.conversation.item.create(item={"type": "function_call_output", "call_id": call.item.call_id,
                                                  "output": "order 42 shipped"})
        await conn.response.create()
        await until(lambda e: e.type == "response.output_audio_transcript.done" and "order 42 shipped" in e.transcript)
    print(json.dumps(summary))


async def guarded():
    try:
        await main()
    except Exception as e:  # report what was seen so far
        print(json.dumps({"failed": repr(e)[:300], "partial": SUMMARY}))


SUMMARY = {}

if __name__ == "__main__":
    asyncio.run(guarded())
