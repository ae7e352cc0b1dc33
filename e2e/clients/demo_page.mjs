// Drives voxgate's demo page in headless Chromium (Debian's chromium, playwright-core as the
// driver): fake microphone from a WAV file, click "Start call", wait for the transcript and the
// delegated work to appear, hang up, screenshot. Prints one JSON summary line.
import { chromium } from "playwright-core";

const [base, wav, shot] = process.argv.slice(2);
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
try {
  const page = await browser.newPage();
  await page.goto(base + "/");
  summary.title = await page.title();
  await page.click("#start");
  await page.waitForFunction(() => document.querySelector("#transcript").textContent.includes("Model:"), null, { timeout: 30000 });
  await page.waitForFunction(() => document.querySelector("#agent").textContent.includes("■"), null, { timeout: 30000 });
  await page.waitForFunction(() => {
    const m = document.querySelector("#audio").textContent.match(/Model audio: (\d+) packets/);
    return m && Number(m[1]) >= 25;
  }, null, { timeout: 30000 });
  summary.audio = await page.textContent("#audio");
  summary.transcript = await page.textContent("#transcript");
  summary.agent = await page.textContent("#agent");
  await page.screenshot({ path: shot, fullPage: true });
  await page.click("#hangup");
  await page.waitForFunction(() => document.querySelector("#status").textContent.includes("Hung up"), null, { timeout: 10000 });
  summary.status = await page.textContent("#status");
} catch (e) {
  summary.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(summary));
