#!/usr/bin/env node
// Plays an HLS or DASH stream in headless Chromium with hls.js, dash.js or Shaka Player; prints ONE JSON line.
//
//   node tests/browser/play.mjs --dir DIR --path index.m3u8 [--seconds 20] [--screenshot out.png]
//   node tests/browser/play.mjs --url http://127.0.0.1:PORT/live/NAME/index.m3u8 [--seconds 20]
//   node tests/browser/play.mjs --player dash|shaka --dir DIR --path manifest.mpd [--seconds 8]
//        [--live] [--switch-audio fra [--switch-after 4]] [--seek-back 600 [--seek-tolerance 8]]
//        [--start-at 0]
//
// --player: hls (hls.js, the default), dash (dash.js: .mpd) or shaka (Shaka Player: .mpd or .m3u8).
// --url mode (a live origin that sends CORS headers): no files are served, only this page, the
// player libraries and a clock (/__player/time, dash.js's fallback time source); the player loads
// URL directly. A live stream has no finite duration, so success needs currentTime to advance
// >= 0.8 * seconds; --live additionally requires the player to report a live stream.
// --switch-audio LANG: after --switch-after seconds of playback (default seconds / 2) switch the
// audio language (hls.js audioTrack, dash.js setCurrentTrack, Shaka selectAudioTrack); success
// then also needs the active language to be LANG at the end (eng/en, fra/fr... are the same) and
// currentTime to advance >= 2 s after the switch. The audio media segments the player requested
// before / after the switch are reported as URL paths.
// --seek-back S: once playback has started and currentTime advanced >= 1 s (or a third of
// --seconds has passed), seek to the live edge the player aims at (hls.js liveSyncPosition, Shaka
// seekRange().end; else the end of video.seekable) minus S seconds, not before the seekable start.
// Success then needs the player to land (the first 'seeked') within --seek-tolerance seconds
// (default 8) of that target and currentTime to advance >= 0.8 * the seconds left after the seek;
// the overall 0.8 * seconds rule no longer applies (advanced_s counts the playback before and
// after the seek). Reported: seek_target_s, seek_landed_s, advanced_before_seek_s,
// advanced_after_seek_s, seek_edge_s, seek_range_s, and the media segments requested before and
// after the seek (segments_before_seek, segments_after_seek: URL path and query), and every
// position the player landed at after the seek (seeked_positions_s: it may move again by itself;
// advanced_after_seek_s counts from the last of them).
// --start-at T: start playback at media time T (hls.js startPosition, Shaka load(url, T)); not for
// dash.js. The media segments requested are reported as segment_requests either way.
// --expect-key-system KS (protected DASH in Shaka, e.g. org.w3.clearkey): success also needs Shaka
// to have chosen the EME key system KS (the licence server comes from the manifest). Key and
// licence requests (hls.js key URIs, Shaka licence POSTs) are reported as key_requests; with
// --expect-key-system or --expect-key-requests at least one is required.
//
// Serves DIR (plus this page and the players) on an ephemeral 127.0.0.1 port, launches
// /usr/bin/chromium through playwright-core with a fresh temporary profile, blocks every
// non-loopback request, plays muted, and reports: ok, reason, player (name and version),
// advanced_s, duration, live, live_latency_s, fatal_errors, nonfatal_errors, http_errors (every
// response >= 400 and failed request, `STATUS URL`), video_width, video_height, dropped_frames,
// total_frames, audio_tracks, audio_lang, ended (and a few more).
// Success (exit 0): currentTime advanced >= 0.8 * min(seconds, 0.8 * duration) after playback
// started (0.8 * seconds for live), and no fatal error. Anything else exits 1; so does the hard
// timeout (seconds + 30 s).
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const HERE = path.dirname(new URL(import.meta.url).pathname);
const require = createRequire(path.join(HERE, 'package.json'));
const STARTUP_S = 30;
const CHROMIUM = '/usr/bin/chromium';

function usage(msg) {
  console.error(`play.mjs: ${msg}\nusage: node tests/browser/play.mjs (--dir DIR --path index.m3u8 | --url URL) [--player hls|dash|shaka] [--seconds 20] [--live] [--switch-audio LANG [--switch-after S]] [--expect-key-system org.w3.clearkey] [--expect-key-requests] [--seek-back S [--seek-tolerance T]] [--start-at T] [--screenshot out.png]`);
  process.exit(2);
}
let a;
try {
  ({ values: a } = parseArgs({ options: {
    dir: { type: 'string' }, path: { type: 'string', default: 'index.m3u8' },
    seconds: { type: 'string', default: '20' }, screenshot: { type: 'string' }, url: { type: 'string' },
    player: { type: 'string', default: 'hls' }, live: { type: 'boolean', default: false },
    'switch-audio': { type: 'string' }, 'switch-after': { type: 'string' },
    'expect-key-system': { type: 'string' }, 'expect-key-requests': { type: 'boolean', default: false },
    'seek-back': { type: 'string' }, 'seek-tolerance': { type: 'string' }, 'start-at': { type: 'string' } } }));
} catch (e) { usage(e.message); }
if (!a.dir && !a.url) usage('--dir or --url is required');
if (a.dir && a.url) usage('--dir and --url exclude each other');
if (a.url && !/^https?:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?\//i.test(a.url)) usage('--url must be an http URL on loopback');
// ROOT is null in --url mode: the server then serves only the player page and hls.js.
const ROOT = a.dir ? path.resolve(a.dir) : null;
if (ROOT && (!fs.existsSync(ROOT) || !fs.statSync(ROOT).isDirectory())) usage(`--dir ${a.dir} is not a directory`);
const SECONDS = Number(a.seconds);
if (!(SECONDS > 0 && SECONDS <= 3600)) usage('--seconds must be in (0, 3600]');
const PLAYER = a.player;
if (!['hls', 'dash', 'shaka'].includes(PLAYER)) usage('--player must be hls, dash or shaka');
const SWITCH_LANG = a['switch-audio'] ?? null;
if (SWITCH_LANG !== null && !/^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*$/.test(SWITCH_LANG)) usage('--switch-audio needs a language code (fra, fr, pt-BR)');
if (a['switch-after'] !== undefined && SWITCH_LANG === null) usage('--switch-after needs --switch-audio');
const SWITCH_AFTER = a['switch-after'] === undefined ? SECONDS / 2 : Number(a['switch-after']);
if (!(SWITCH_AFTER >= 0 && SWITCH_AFTER < SECONDS)) usage('--switch-after must be in [0, seconds)');
// Playback that must follow an audio switch for it to count.
const AFTER_SWITCH_S = 2;
const SEEK_BACK = a['seek-back'] === undefined ? null : Number(a['seek-back']);
if (SEEK_BACK !== null && !(SEEK_BACK > 0 && SEEK_BACK <= 172800)) usage('--seek-back must be in (0, 172800] seconds');
if (a['seek-tolerance'] !== undefined && SEEK_BACK === null) usage('--seek-tolerance needs --seek-back');
const SEEK_TOLERANCE = a['seek-tolerance'] === undefined ? 8 : Number(a['seek-tolerance']);
if (!(SEEK_TOLERANCE > 0)) usage('--seek-tolerance must be > 0');
if (SEEK_BACK !== null && SWITCH_LANG !== null) usage('--seek-back and --switch-audio exclude each other');
// Playback before the seek (media seconds), or at most this share of --seconds of waiting.
const BEFORE_SEEK_S = 1;
const START_AT = a['start-at'] === undefined ? null : Number(a['start-at']);
if (START_AT !== null && !(START_AT >= 0)) usage('--start-at must be >= 0');
if (START_AT !== null && PLAYER === 'dash') usage('--start-at is for hls and shaka');

let playwright;
try { playwright = require('playwright-core'); } catch {
  usage(`playwright-core is not installed: run scripts/test.sh (or npm ci in ${HERE})`);
}
// The player libraries, served under /__player/ (page.html loads the one --player names).
const LIBS = {
  '/__player/hls.min.js': ['hls', 'node_modules/hls.js/dist/hls.min.js'],
  '/__player/dash.all.min.js': ['dash', 'node_modules/dashjs/dist/modern/umd/dash.all.min.js'],
  '/__player/shaka-player.compiled.js': ['shaka', 'node_modules/shaka-player/dist/shaka-player.compiled.js'],
};
for (const [name, file] of Object.values(LIBS)) {
  if (name === PLAYER && !fs.existsSync(path.join(HERE, file))) usage(`${file} is not installed: run scripts/test.sh (or npm ci in ${HERE})`);
}
if (!fs.existsSync(CHROMIUM)) usage(`${CHROMIUM} is missing: run scripts/test.sh (apt-get install chromium)`);

const udd = fs.mkdtempSync(path.join(os.tmpdir(), 'strom-play-'));
const cleanupProfile = () => { try { fs.rmSync(udd, { recursive: true, force: true }); } catch { /* best effort */ } };
const emit = (report) => process.stdout.write(JSON.stringify(report) + '\n');

// Hard stop. process.exit() runs playwright-core's exit hook, which kills the browser it launched.
const hardStop = setTimeout(() => {
  emit({ ok: false, reason: `hard timeout after ${SECONDS + STARTUP_S} s (browser killed)` });
  cleanupProfile();
  process.exit(1);
}, (SECONDS + STARTUP_S) * 1000);

// --- static server: DIR at /, the page and hls.js under /__player/
const MIME = {
  '.m3u8': 'application/vnd.apple.mpegurl', '.ts': 'video/mp2t', '.mp4': 'video/mp4', '.m4s': 'video/iso.segment',
  '.m4a': 'audio/mp4', '.m4v': 'video/mp4', '.aac': 'audio/aac', '.vtt': 'text/vtt', '.key': 'application/octet-stream',
  '.mpd': 'application/dash+xml', '.cmfv': 'video/mp4', '.cmfa': 'audio/mp4',
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript',
};
const CORS = {
  'access-control-allow-origin': '*', 'access-control-allow-methods': 'GET, HEAD, OPTIONS',
  'access-control-allow-headers': 'range', 'access-control-expose-headers': 'content-length, content-range',
};
function resolveFile(urlPath) {
  if (urlPath === '/__player/' || urlPath === '/__player/index.html') return path.join(HERE, 'page.html');
  if (Object.hasOwn(LIBS, urlPath)) return path.join(HERE, LIBS[urlPath][1]);
  if (ROOT === null) return null;
  const file = path.resolve(ROOT, '.' + path.posix.normalize(urlPath));
  if (file !== ROOT && !file.startsWith(ROOT + path.sep)) return null;
  return file;
}
const server = http.createServer((req, res) => {
  const headers = { ...CORS, 'cache-control': 'no-cache' };
  if (req.method === 'OPTIONS') { res.writeHead(204, headers); res.end(); return; }
  if (req.method !== 'GET' && req.method !== 'HEAD') { res.writeHead(405, headers); res.end(); return; }
  let urlPath;
  try { urlPath = decodeURIComponent(new URL(req.url, 'http://127.0.0.1').pathname); } catch { res.writeHead(400, headers); res.end(); return; }
  if (urlPath === '/__player/time') {                     // dash.js's clock (urn:mpeg:dash:utc:http-iso:2014)
    res.writeHead(200, { ...headers, 'content-type': 'text/plain' });
    res.end(req.method === 'HEAD' ? undefined : new Date().toISOString());
    return;
  }
  const file = resolveFile(urlPath);
  let st = null;
  try { st = file && fs.statSync(file); } catch { st = null; }
  if (!st || !st.isFile()) { res.writeHead(404, headers); res.end(); return; }
  headers['content-type'] = MIME[path.extname(file).toLowerCase()] || 'application/octet-stream';
  headers['accept-ranges'] = 'bytes';
  let start = 0, end = st.size - 1, status = 200;
  const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range || '');
  if (range && (range[1] || range[2])) {
    if (range[1]) { start = Number(range[1]); if (range[2]) end = Math.min(Number(range[2]), end); } else { start = Math.max(0, st.size - Number(range[2])); }
    if (start > end || start >= st.size) { res.writeHead(416, { ...headers, 'content-range': `bytes */${st.size}` }); res.end(); return; }
    status = 206; headers['content-range'] = `bytes ${start}-${end}/${st.size}`;
  }
  headers['content-length'] = String(st.size === 0 ? 0 : end - start + 1);
  res.writeHead(status, headers);
  if (req.method === 'HEAD' || st.size === 0) { res.end(); return; }
  fs.createReadStream(file, { start, end }).on('error', () => res.destroy()).pipe(res);
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const origin = `http://127.0.0.1:${server.address().port}`;

// --- browser: system Chromium, fresh profile, loopback only
let ctx = null;
async function finish(report) {
  clearTimeout(hardStop);
  emit(report);
  if (ctx) await Promise.race([ctx.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
  server.close();
  cleanupProfile();
  process.exit(report.ok ? 0 : 1);
}
const httpErrors = [], pageErrors = [], blocked = [], aborted = [];
try {
  ctx = await playwright.chromium.launchPersistentContext(udd, {
    executablePath: CHROMIUM, headless: true, viewport: { width: 1280, height: 720 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost'],
  });
} catch (e) {
  await finish({ ok: false, reason: 'cannot launch chromium: ' + String(e.message).split('\n')[0] });
}
const loopback = (u) => {
  if (!/^(https?|wss?):/i.test(u)) return true;               // data:, blob:, about: stay inside the page
  try { return ['127.0.0.1', 'localhost', '[::1]'].includes(new URL(u).hostname); } catch { return false; }
};
await ctx.route((u) => !loopback(u.href), (route) => {
  if (blocked.length < 20) blocked.push(route.request().url());
  route.abort('blockedbyclient');
});
const page = ctx.pages()[0] || (await ctx.newPage());
page.on('response', (r) => { if (r.status() >= 400 && httpErrors.length < 50) httpErrors.push(`${r.status()} ${r.url()}`); });
page.on('requestfailed', (r) => {
  const why = r.failure()?.errorText || 'unknown';
  // a player cancelling its own request (an audio switch, a seek) is not a server failure
  if (why === 'net::ERR_ABORTED') { if (aborted.length < 50) aborted.push(r.url()); return; }
  if (httpErrors.length < 50) httpErrors.push(`FAILED ${why} ${r.url()}`);
});
page.on('pageerror', (e) => { if (pageErrors.length < 10) pageErrors.push(String(e.message).slice(0, 300)); });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const url = a.url || `${origin}/${a.path.split('/').map(encodeURIComponent).join('/')}`;
await page.goto(`${origin}/__player/index.html`);
const snap = () => page.evaluate(() => window.snapshot());
const t0 = Date.now();
// not awaited: start() resolves only once the player has loaded the manifest
await page.evaluate((o) => { window.start(o); }, { player: PLAYER, url, timeUrl: `${origin}/__player/time`, startAt: START_AT });
let s = await snap();
while (s.startedAt === null && !s.fatal.length && Date.now() - t0 < STARTUP_S * 1000) {
  await sleep(250);
  s = await snap();
}
const startupMs = s.startedAt === null ? null : Date.now() - t0;
const ct0 = s.startedAt === null ? s.currentTime : s.startTime;
const w0 = Date.now();
// the audio switch: null until done; then what the player reported before it and when it happened
let sw = null;
// the seek back: null until done; then what window.seekBack() said, when, and the playback before it
let sk = null;
if (startupMs !== null) {
  while (!s.fatal.length && !s.ended && Date.now() - w0 < SECONDS * 1000) {
    await sleep(250);
    s = await snap();
    if (SWITCH_LANG !== null && sw === null && Date.now() - w0 >= SWITCH_AFTER * 1000 && !s.fatal.length) {
      const before = s.audioLang;
      const refused = await page.evaluate((l) => window.switchAudio(l), SWITCH_LANG);
      s = await snap();
      sw = { before, refused, wall: +((Date.now() - w0) / 1000).toFixed(2), at: s.switchTime, t: s.switchedAt };
    }
    if (SEEK_BACK !== null && sk === null && !s.fatal.length
        && (s.currentTime - ct0 >= BEFORE_SEEK_S || Date.now() - w0 >= SECONDS * 1000 / 3)) {
      const before = +(s.currentTime - ct0).toFixed(3);
      const r = await page.evaluate((b) => window.seekBack(b), SEEK_BACK);
      s = await snap();
      sk = { ...r, before, wall: (Date.now() - w0) / 1000, t: s.seekAt };
    }
  }
}
const warnings = [];
if (a.screenshot) {
  await page.locator('video').screenshot({ path: a.screenshot, timeout: 10000 })
    .catch((e) => warnings.push('screenshot: ' + String(e.message).split('\n')[0]));
}
s = await snap();

// hls.js's own latency estimates (null for VOD, other players, or when unknown).
const lat = await page.evaluate(() => {
  const h = window.hls;
  const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? +v.toFixed(3) : null);
  return h ? { latency: num(h.latency), target: num(h.targetLatency) } : { latency: null, target: null };
}).catch(() => ({ latency: null, target: null }));
const duration = Number.isFinite(s.duration) ? +s.duration.toFixed(3) : null;
// A live stream (--live, or one the player reports as live when loaded by --url): the media
// duration is only what is available, so require 0.8 * SECONDS.
const asLive = a.live || (a.url && s.live);
const reasons = [];
if (s.fatal.length) reasons.push('fatal error: ' + JSON.stringify(s.fatal[0]));
else if (startupMs === null) reasons.push(`playback did not start within ${STARTUP_S} s`);
let advanced = +(s.currentTime - ct0).toFixed(3);
let target = +(0.8 * (duration === null || asLive ? SECONDS : Math.min(SECONDS, 0.8 * duration))).toFixed(3);
const seekReport = {};
if (SEEK_BACK !== null) {
  // After the seek, playback is measured from where the player landed.
  const landed = sk === null || s.seekedTime === null ? null : +s.seekedTime.toFixed(3);
  // Measured from the last 'seeked': a jump the player makes itself after landing is not playback.
  const lastSeeked = s.seeks.length ? s.seeks[s.seeks.length - 1].time : landed;
  const after = landed === null ? null : +(s.currentTime - lastSeeked).toFixed(3);
  const left = sk === null ? null : Math.max(0, SECONDS - sk.wall);
  target = left === null ? target : +(0.8 * left).toFixed(3);
  advanced = +((sk === null ? advanced : sk.before) + Math.max(0, after ?? 0)).toFixed(3);
  const segs = (pred) => s.segmentRequests.filter(pred).map((r) => r.path);
  if (sk === null) reasons.push('the seek back never happened (playback stopped first)');
  else if (sk.refused) reasons.push(`seek back refused: ${sk.refused}`);
  else if (landed === null) reasons.push(`the player never finished seeking to ${sk.target} s`);
  else {
    if (Math.abs(landed - sk.target) > SEEK_TOLERANCE) reasons.push(`landed at ${landed} s, more than ${SEEK_TOLERANCE} s from the target ${sk.target} s`);
    if (!(after >= target)) reasons.push(`currentTime advanced ${after} s after the seek < required ${target} s`);
  }
  Object.assign(seekReport, {
    seek_back_s: SEEK_BACK, seek_edge_s: sk ? sk.edge ?? null : null,
    seek_range_s: sk ? [sk.start ?? null, sk.end ?? null] : null, seek_from_s: sk ? sk.from ?? null : null,
    seek_target_s: sk ? sk.target ?? null : null, seek_landed_s: landed,
    seek_wall_s: sk ? +sk.wall.toFixed(2) : null, seek_ms: sk && s.seekedAt !== null ? Math.round(s.seekedAt - sk.t) : null,
    advanced_before_seek_s: sk ? sk.before : null, advanced_after_seek_s: after,
    seeked_positions_s: s.seeks.map((x) => +x.time.toFixed(3)),
    segments_before_seek: segs((r) => sk === null || sk.t === null || r.t < sk.t),
    segments_after_seek: segs((r) => sk !== null && sk.t !== null && r.t >= sk.t),
  });
} else if (advanced < target) reasons.push(`currentTime advanced ${advanced} s < required ${target} s`);
if (a.live && !s.live) reasons.push('--live: the player does not report a live stream');
// Protected streams: the EME key system Shaka chose (only Shaka reports one) and the key or
// licence requests the player made (HLS key URIs, EME licence POSTs).
const KEY_SYSTEM = a['expect-key-system'] ?? null;
if (KEY_SYSTEM !== null && s.keySystem !== KEY_SYSTEM) reasons.push(`key system ${s.keySystem} is not ${KEY_SYSTEM}`);
if ((KEY_SYSTEM !== null || a['expect-key-requests']) && !s.keyRequests.length) reasons.push('no key or licence request was made');

const paths = (list) => list.map((r) => r.path);
const switchReport = {};
if (SWITCH_LANG !== null) {
  const after = sw === null ? [] : s.audioRequests.filter((r) => r.t >= sw.t);
  const advancedAfter = sw === null || sw.at === null ? null : +(s.currentTime - sw.at).toFixed(3);
  const langNow = s.audioLang;
  const matches = await page.evaluate(([x, y]) => window.sameLang(x, y), [langNow, SWITCH_LANG]);
  if (sw === null) reasons.push(`audio switch to ${SWITCH_LANG} never happened (playback stopped first)`);
  else if (sw.refused) reasons.push(`audio switch to ${SWITCH_LANG} refused: ${sw.refused}`);
  else {
    if (!matches) reasons.push(`active audio language is ${langNow} after switching to ${SWITCH_LANG}`);
    if (!(advancedAfter >= AFTER_SWITCH_S)) reasons.push(`currentTime advanced ${advancedAfter} s < ${AFTER_SWITCH_S} s after the audio switch`);
  }
  Object.assign(switchReport, {
    switch_audio: SWITCH_LANG, audio_lang_before: sw ? sw.before : null, switched_at_s: sw ? sw.at : null,
    switch_wall_s: sw ? sw.wall : null, advanced_after_switch_s: advancedAfter,
    audio_requests_before_switch: paths(sw === null ? s.audioRequests : s.audioRequests.filter((r) => r.t < sw.t)),
    audio_requests_after_switch: paths(after),
  });
}
await finish({
  ok: reasons.length === 0, reason: reasons.join('; ') || null, url, player: s.lib || null, player_name: PLAYER,
  advanced_s: advanced, required_s: target, duration, ended: s.ended, startup_ms: startupMs,
  live: s.live, live_latency_s: s.liveLatency, latency_s: lat.latency, target_latency_s: lat.target,
  wall_s: +((Date.now() - w0) / 1000).toFixed(2),
  video_width: s.videoWidth, video_height: s.videoHeight,
  dropped_frames: s.droppedFrames ?? null, total_frames: s.totalFrames ?? null,
  key_system: s.keySystem, key_requests: s.keyRequests,
  audio_tracks: s.audioTracks, audio_lang: s.audioLang, audio_requests: s.audioRequests.length, ...switchReport,
  ...seekReport, start_at_s: START_AT, start_time_s: s.startTime === null ? null : +s.startTime.toFixed(3),
  segment_requests: s.segmentRequests.map((r) => r.path),
  fatal_errors: s.fatal, nonfatal_errors: s.errors, http_errors: httpErrors, aborted_requests: aborted,
  blocked_external_requests: blocked, page_errors: pageErrors, events: s.events, event_log: s.eventLog || [], warnings,
  screenshot: a.screenshot || null,
});
