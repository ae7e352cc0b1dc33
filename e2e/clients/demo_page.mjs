// Drives voxgate's demo page in headless Chromium (Debian's chromium, playwright-core as the
// driver): fake microphone from a WAV file, click "Start call", wait for the transcript and the
// delegated work to appear, type a message, hang up, screenshot, and check that the microphone
// was released and the next call starts on clean panes. With a key as the fourth argument the
// gateway is in keys mode: a call without the key is refused (microphone released), then the
// key is typed into the page's field and the call goes through. Prints one JSON summary line.
import { chromium } from "playwright-core";

const [base, wav, shot, key] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    `--use-file-for-fake-audio-capture=${wav}`, "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
  ],
});
const summary = {};
const text = (sel) => page.textContent(sel);
const until = (fn, arg, ms = 30000) => page.waitForFunction(fn, arg, { timeout: ms });
// Every microphone track the page ever opened, and whether each is stopped now.
const micReleased = () => page.evaluate(() => window.__tracks.length > 0 && window.__tracks.every((t) => t.readyState === "ended"));
let page;
try {
  page = await browser.newPage();
  await page.addInitScript(() => {
    window.__tracks = [];
    const open = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
    navigator.mediaDevices.getUserMedia = async (c) => {
      const s = await open(c);
      window.__tracks.push(...s.getTracks());
      return s;
    };
  });
  await page.goto(base + "/");
  summary.title = await page.title();
  summary.simulatorNotice = await page.isVisible("#simulator");
  summary.keyField = await page.isVisible("#key");
  if (key) {
    await page.click("#start");
    await until(() => document.querySelector("#status").textContent.startsWith("Call refused"));
    summary.refused = await text("#status");
    summary.micReleasedOnRefusal = await micReleased();
    await page.fill("#key", key);
  }
  await page.click("#start");
  await until(() => document.querySelector("#transcript").textContent.includes("Model:"));
  // The meter moved with the fake microphone's speech.
  await until(() => Number(document.querySelector("#level").value) > 0.05, null, 10000);
  summary.levelMoved = true;
  if (!key) {
    await until(() => document.querySelector("#agent").textContent.includes("■"));
    await until(() => !document.querySelector("#text").disabled);
    await page.fill("#text", "what is the weather");
    await page.click("#send");
    await until(() => document.querySelector("#transcript").textContent.includes("Model: You said: what is the weather"));
    await until(() => {
      const m = document.querySelector("#audio").textContent.match(/Model audio: (\d+) packets/);
      return m && Number(m[1]) >= 25;
    });
  }
  summary.audio = await text("#audio");
  summary.transcript = await text("#transcript");
  summary.agent = await text("#agent");
  if (shot) await page.screenshot({ path: shot, fullPage: true });
  await page.click("#hangup");
  await until(() => document.querySelector("#status").textContent.includes("Hung up"), null, 10000);
  summary.status = await text("#status");
  summary.micReleasedOnHangup = await micReleased();
  summary.levelAfterHangup = await page.evaluate(() => Number(document.querySelector("#level").value));
  if (!key) {
    // The next call starts on clean panes.
    await page.click("#start");
    summary.transcriptAtNextCall = await text("#transcript");
    summary.agentAtNextCall = await text("#agent");
    await until(() => document.querySelector("#status").textContent.includes("connected"));
    await page.click("#hangup");
    await until(() => document.querySelector("#status").textContent.includes("Hung up"), null, 10000);
    summary.micReleasedAfterSecondCall = await micReleased();
  }
} catch (e) {
  summary.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(summary));
