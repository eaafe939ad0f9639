#!/usr/bin/env bash
# The main job: package a 60 s H.264 + AAC sample into HLS (MPEG-TS segments) with strom.
#
#   ./scripts/demo.sh [--segment-duration SECS]
#
# 1. generates target/demo/sample.mp4 once (60 s 1280x720 25 fps H.264 High + AAC-LC, testsrc2 + sine);
# 2. cargo run --release --example package -- target/demo/sample.mp4 --out target/demo/hls;
# 3. prints how to play the result.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { printf '[demo.sh] %s\n' "$*"; }

SEGMENT_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --segment-duration) SEGMENT_ARGS=(--segment-duration "${2:?--segment-duration needs a value}"); shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
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
OUT="$DEMO/hls"
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

rm -rf "$OUT"
log "cargo run --release --example package -- target/demo/sample.mp4 --out target/demo/hls ${SEGMENT_ARGS[*]}"
if ! cargo run --release --example package -- "$SAMPLE" --out "$OUT" "${SEGMENT_ARGS[@]}"; then
  [ -f examples/package.rs ] || log "examples/package.rs does not exist yet: the packager example is not written"
  log "FAILED: the packager did not run"
  exit 1
fi
[ -f "$OUT/index.m3u8" ] || { log "FAILED: $OUT/index.m3u8 was not written"; exit 1; }

cat <<EOF

[demo.sh] done: $(find "$OUT" -name '*.ts' | wc -l) segments, playlists in target/demo/hls/
  ls target/demo/hls && cat target/demo/hls/index.m3u8

Play it:
  # in a browser with hls.js (headless check, prints a JSON verdict, screenshot of the last frame):
  node tests/browser/play.mjs --dir target/demo/hls --path index.m3u8 --seconds 20 --screenshot target/demo/shot.png
  # or serve it and open http://127.0.0.1:8000/index.m3u8 in Safari, VLC or mpv:
  python3 -m http.server --bind 127.0.0.1 --directory target/demo/hls 8000
  # or straight from disk:
  ffplay target/demo/hls/index.m3u8
EOF
