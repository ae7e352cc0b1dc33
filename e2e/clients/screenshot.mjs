// Opens a page (a file:// URL or http) in headless Chromium, screenshots it whole, and reports
// the smallest text size drawn in its SVG charts. Prints one JSON summary line.
import { chromium } from "playwright-core";

const [url, shot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});
const summary = {};
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(url);
  summary.title = await page.title();
  summary.charts = await page.locator("svg").count();
  summary.minSvgFontPx = await page.evaluate(() => Math.min(...[...document.querySelectorAll("svg text")]
    .map((t) => parseFloat(getComputedStyle(t).fontSize))));
  summary.minTableFontPx = await page.evaluate(() => Math.min(...[...document.querySelectorAll("td, th")]
    .map((t) => parseFloat(getComputedStyle(t).fontSize))));
  await page.screenshot({ path: shot, fullPage: true });
} catch (e) {
  summary.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(summary));
