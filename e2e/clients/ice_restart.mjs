// A browser caller restarts ICE on a live voxgate call, as a page does after its network
// changed: headless Chromium (Debian's chromium, playwright-core as the driver) calls voxgate,
// hears a reply, then `pc.restartIce()` and sends the new offer with
// `PATCH /v1/realtime/calls/{id}`; after the answer it asks for another reply and must hear it
// over the restarted transport. Prints one JSON summary line.
import { chromium } from "playwright-core";

const [base] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
  ],
});
let summary = {};
try {
  const page = await browser.newPage();
  await page.goto(base + "/");
  summary = await page.evaluate(async () => {
    const out = {};
    const within = (ms, what, check) => new Promise((resolve, reject) => {
      const started = Date.now();
      const poll = async () => {
        try {
          if (await check()) return resolve();
        } catch (e) { return reject(e); }
        if (Date.now() - started > ms) return reject(new Error("timed out waiting for " + what));
        setTimeout(poll, 50);
      };
      poll();
    });
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const pc = new RTCPeerConnection();
    pc.addTrack(stream.getAudioTracks()[0], stream);
    const dc = pc.createDataChannel("oai-events");
    const events = [];
    dc.onmessage = (e) => { try { events.push(JSON.parse(e.data).type); } catch { } };
    await pc.setLocalDescription(await pc.createOffer());
    const created = await fetch("/v1/realtime/calls", {
      method: "POST", headers: { "Content-Type": "application/sdp" }, body: pc.localDescription.sdp,
    });
    out.createStatus = created.status;
    const location = created.headers.get("Location");
    await pc.setRemoteDescription({ type: "answer", sdp: await created.text() });
    const ufrag = (sdp) => sdp.match(/a=ice-ufrag:(\S+)/)[1];
    out.ufragBefore = ufrag(pc.remoteDescription.sdp);
    await within(15000, "the data channel", () => dc.readyState === "open");
    const packets = async () => {
      let n = 0;
      (await pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "audio") n = s.packetsReceived;
      });
      return n;
    };
    const selectedRemoteUfrag = async () => {
      const stats = await pc.getStats();
      let found = null;
      stats.forEach((s) => {
        if (s.type === "transport" && s.selectedCandidatePairId) {
          const pair = stats.get(s.selectedCandidatePairId);
          const remote = pair && stats.get(pair.remoteCandidateId);
          found = remote ? remote.usernameFragment : null;
        }
      });
      return found;
    };
    const replies = () => events.filter((t) => t === "response.done").length;
    dc.send(JSON.stringify({ type: "response.create" }));
    await within(15000, "the first reply", async () => replies() >= 1 && (await packets()) > 10);
    out.packetsBefore = await packets();

    pc.restartIce();
    await pc.setLocalDescription(await pc.createOffer());
    const patched = await fetch(location, {
      method: "PATCH", headers: { "Content-Type": "application/sdp" }, body: pc.localDescription.sdp,
    });
    out.patchStatus = patched.status;
    await pc.setRemoteDescription({ type: "answer", sdp: await patched.text() });
    out.ufragAfter = ufrag(pc.remoteDescription.sdp);
    await within(15000, "the restarted pair", async () => (await selectedRemoteUfrag()) === out.ufragAfter);
    out.selectedRemoteUfrag = await selectedRemoteUfrag();

    const heard = await packets();
    const before = replies();
    dc.send(JSON.stringify({ type: "response.create" }));
    await within(15000, "a reply after the restart", async () => replies() > before && (await packets()) > heard + 10);
    out.packetsAfter = await packets();
    out.connectionState = pc.connectionState;
    out.dataChannel = dc.readyState;
    const hung = await fetch(location, { method: "DELETE" });
    out.hangupStatus = hung.status;
    pc.close();
    return out;
  });
} catch (e) {
  summary.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(summary));
