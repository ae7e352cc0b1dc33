// A page served from another origin places a call on voxgate in headless Chromium: it holds an
// `ek_` client secret (as a page gets one from its own server), posts its offer cross-origin
// (CORS preflight with Authorization), reads the call's Location, hears the model on the data
// channel and hangs up cross-origin. Each page URL given is visited; prints one JSON line with
// what each page reported (`window.__result`).
import { chromium } from "playwright-core";

const [wav, ...pages] = process.argv.slice(2);
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
const summary = { pages: [] };
try {
  for (const url of pages) {
    const page = await browser.newPage();
    await page.goto(url);
    await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 45000 });
    summary.pages.push(await page.evaluate(() => window.__result));
    await page.close();
  }
} catch (e) {
  summary.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(summary));
