#!/usr/bin/env bash
# The main job: strom's live origin (RTMP in, live HLS out) with a demo publisher.
#
#   ./scripts/demo.sh [--rtmp 127.0.0.1:1935] [--http 127.0.0.1:8080] [--seconds N] [--no-publisher]
#   ./scripts/demo.sh --vod [--segment-duration SECS]
#
# Live (default):
# 1. generates target/demo/sample.mp4 once (60 s 1280x720 25 fps H.264 High + AAC-LC, testsrc2 + sine,
#    keyframe every 2 s);
# 2. cargo run --release --example live_origin -- --rtmp ADDR --http ADDR;
# 3. ffmpeg publishes the sample in a loop to rtmp://ADDR/live/test (unless --no-publisher);
# 4. prints where to watch (status page with hls.js, HLS URL, RTMP URL) and runs until Ctrl-C, or
#    for N seconds with --seconds. It stops only the processes it started.
# --vod packages the sample into HLS VOD files in target/demo/hls instead (examples/package.rs).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { printf '[demo.sh] %s\n' "$*"; }

MODE=live
RTMP=127.0.0.1:1935
HTTP=127.0.0.1:8080
SECONDS_TO_RUN=0
PUBLISHER=1
SEGMENT_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --vod) MODE=vod; shift ;;
    --rtmp) RTMP="${2:?--rtmp needs ADDR}"; shift 2 ;;
    --http) HTTP="${2:?--http needs ADDR}"; shift 2 ;;
    --seconds) SECONDS_TO_RUN="${2:?--seconds needs a number}"; shift 2 ;;
    --no-publisher) PUBLISHER=0; shift ;;
    --segment-duration) SEGMENT_ARGS=(--segment-duration "${2:?--segment-duration needs a value}"); shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) log "unknown argument: $1"; exit 2 ;;
  esac
done

# ffmpeg (same policy as scripts/test.sh: install only when missing, as root or through sudo)
if ! command -v ffmpeg >/dev/null 2>&1; then
  log "ffmpeg is missing: apt-get install ffmpeg"
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { log "need root or sudo to install ffmpeg"; exit 1; }
    SUDO=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends ffmpeg
fi

DEMO="$ROOT/target/demo"
SAMPLE="$DEMO/sample.mp4"
mkdir -p "$DEMO"
if [ ! -s "$SAMPLE" ]; then
  log "generating $SAMPLE (60 s 1280x720 25 fps H.264 High + AAC, keyframe every 2 s)"
  ffmpeg -nostdin -hide_banner -v error -y \
    -f lavfi -i "testsrc2=size=1280x720:rate=25:duration=60" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=60" \
    -c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p -b:v 3M \
    -g 50 -keyint_min 50 -sc_threshold 0 \
    -c:a aac -ar 48000 -ac 2 -b:a 128k \
    "$DEMO/.sample.tmp.mp4"
  mv "$DEMO/.sample.tmp.mp4" "$SAMPLE"
else
  log "using cached $SAMPLE"
fi

if [ "$MODE" = vod ]; then
  OUT="$DEMO/hls"
  rm -rf "$OUT"
  log "cargo run --release --example package -- target/demo/sample.mp4 --out target/demo/hls ${SEGMENT_ARGS[*]}"
  cargo run --release --example package -- "$SAMPLE" --out "$OUT" "${SEGMENT_ARGS[@]}"
  [ -f "$OUT/index.m3u8" ] || { log "FAILED: $OUT/index.m3u8 was not written"; exit 1; }
  cat <<EOF

[demo.sh] done: $(find "$OUT" -name '*.ts' | wc -l) segments, playlists in target/demo/hls/
  ffplay target/demo/hls/index.m3u8
  node tests/browser/play.mjs --dir target/demo/hls --path index.m3u8 --seconds 20 --screenshot target/demo/shot.png
EOF
  exit 0
fi

# The status page loads hls.js from the test suite's pinned npm install; fetch it when npm is here.
if [ ! -f tests/browser/node_modules/hls.js/dist/hls.min.js ]; then
  if command -v npm >/dev/null 2>&1; then
    log "installing the pinned hls.js for the status page (npm ci in tests/browser)"
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error) || log "npm ci failed: the status page cannot play, HLS URLs still work"
  else
    log "npm is missing: the status page cannot play (scripts/test.sh installs it); HLS URLs still work"
  fi
fi

log "building the live origin (cargo build --release --example live_origin)"
cargo build --release --example live_origin
PIDS=()
cleanup() {   # the publisher first, then the origin
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill "${PIDS[i]}" 2>/dev/null || true
    wait "${PIDS[i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 0' INT TERM

target/release/examples/live_origin --rtmp "$RTMP" --http "$HTTP" &
PIDS+=($!)
for _ in $(seq 100); do
  curl -fs -o /dev/null "http://$HTTP/streams.json" 2>/dev/null && break
  kill -0 "${PIDS[0]}" 2>/dev/null || { log "FAILED: the live origin exited (port taken?)"; exit 1; }
  sleep 0.1
done

if [ "$PUBLISHER" = 1 ]; then
  log "publishing the sample in a loop: ffmpeg -re -stream_loop -1 -i target/demo/sample.mp4 -c copy -f flv rtmp://$RTMP/live/test"
  ffmpeg -nostdin -hide_banner -loglevel fatal -re -stream_loop -1 -i "$SAMPLE" -c copy -f flv "rtmp://$RTMP/live/test" &
  PIDS+=($!)
  for _ in $(seq 100); do
    curl -fs "http://$HTTP/live/test/media.m3u8" 2>/dev/null | grep -q '\.ts' && break
    sleep 0.1
  done
fi

cat <<EOF

[demo.sh] live:
  status page (plays in the browser): http://$HTTP/
  HLS:  http://$HTTP/live/test/index.m3u8   (ffplay, VLC, Safari, hls.js)
  RTMP: ffplay rtmp://$RTMP/live/test
  JSON: curl http://$HTTP/streams.json
  headless check: node tests/browser/play.mjs --url http://$HTTP/live/test/index.m3u8 --seconds 20
EOF
if [ "$SECONDS_TO_RUN" -gt 0 ]; then
  log "running for $SECONDS_TO_RUN s"
  sleep "$SECONDS_TO_RUN"
  curl -fs "http://$HTTP/streams.json" && echo
else
  log "Ctrl-C stops it"
  wait "${PIDS[0]}"
fi
