// The official OpenAI JS SDK (`openai` from npm, on the Node it needs) as a voxgate client:
// only the base URL changes. OpenAIRealtimeWS always opens `wss://<baseURL>/realtime`, so
// voxgate serves TLS; Node trusts the test's certificate through NODE_EXTRA_CA_CERTS.
// Runs session.update, a typed turn, a spoken turn (PCM16 appends) and a delegation voxgate
// answers server-side. Prints one JSON summary line.
import OpenAI from "openai";
import { OpenAIRealtimeWS } from "openai/realtime/ws";

const [baseURL, apiKey] = process.argv.slice(2);
const summary = { node: process.version, types: [], transcripts: [], audioBytes: 0, errors: [] };
const waiters = [];

function until(pred, what, ms = 20000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("timed out waiting for " + what)), ms);
    waiters.push({ pred, resolve: (ev) => { clearTimeout(timer); resolve(ev); } });
  });
}

function tone(ms, loud) {
  const pcm = Buffer.alloc(ms * 24 * 2);
  for (let i = 0; i < ms * 24; i++) {
    pcm.writeInt16LE(loud ? Math.round(8000 * Math.sin((2 * Math.PI * 220 * i) / 24000)) : 0, i * 2);
  }
  return pcm.toString("base64");
}

function say(rt, text) {
  rt.send({ type: "conversation.item.create", item: { type: "message", role: "user",
    content: [{ type: "input_text", text }] } });
  rt.send({ type: "response.create" });
}

let rt;
try {
  const client = new OpenAI({ apiKey, baseURL });
  rt = new OpenAIRealtimeWS({ model: "gpt-realtime" }, client);
  rt.on("event", (ev) => {
    summary.types.push(ev.type);
    if (ev.type === "response.output_audio.delta") summary.audioBytes += Buffer.from(ev.delta, "base64").length;
    if (ev.type === "response.output_audio_transcript.done") summary.transcripts.push(ev.transcript);
    for (const w of waiters.splice(0)) {
      if (w.pred(ev)) w.resolve(ev); else waiters.push(w);
    }
  });
  rt.on("error", (err) => summary.errors.push(String((err && err.message) || err)));
  await new Promise((resolve, reject) => {
    rt.socket.once("open", resolve);
    rt.socket.once("error", reject);
  });
  summary.url = rt.url ? String(rt.url) : undefined;

  let next = until((e) => e.type === "session.updated" && e.session.instructions === "You are a JS test.", "session.updated");
  rt.send({ type: "session.update", session: { type: "realtime", instructions: "You are a JS test." } });
  await next;

  next = until((e) => e.type === "response.output_audio_transcript.done" && e.transcript === "You said: hello from node", "the typed reply");
  say(rt, "hello from node");
  await next;

  next = until((e) => e.type === "response.output_audio_transcript.done" && e.transcript === "You said: hello from the microphone", "the spoken reply");
  for (let i = 0; i < 5; i++) rt.send({ type: "input_audio_buffer.append", audio: tone(100, true) });
  for (let i = 0; i < 6; i++) rt.send({ type: "input_audio_buffer.append", audio: tone(100, false) });
  await next;

  next = until((e) => e.type === "response.output_audio_transcript.done" && e.transcript.startsWith("Here is what I found"), "the delegated answer");
  say(rt, "delegate: count the files");
  await next;
} catch (e) {
  summary.failed = String((e && e.message) || e);
} finally {
  if (rt) rt.close();
}
console.log(JSON.stringify(summary));
process.exit(0);
