#!/usr/bin/env bash
# MPEG-TS demux: strom's TsDemuxer vs `ffmpeg -i IN.ts -c copy -f null -`, user+sys CPU, same run.
#
#   ./scripts/bench_ts_demux.sh            (env: REPS=5 samples, median; INNER=5 runs per sample)
#
# Input: target/bench-media/bench_1080p_6m_100s.ts, the 20 s x264 High 1080p25 ~6 Mbit/s + AAC
# transport stream of the criterion bench (benches/ts_demux.rs, bench_1080p_6m_20s.ts) looped five
# times with `-c copy` (continuous timestamps, ~82 MB), made once.
#   strom:  the bench binary in one-shot mode: STROM_TS_DEMUX_FILE=IN reads the file and demuxes it
#           STROM_TS_DEMUX_PASSES times in 1 MiB chunks (PAT/PMT, PES reassembly, Annex B to
#           length-prefixed frames with the parameter sets taken out, ADTS to raw AAC, timestamps
#           unwrapped), frames discarded.
#   ffmpeg: `ffmpeg -v error -nostdin -i IN -map 0 -c copy -f null -` (demux, parsers and packet
#           copy, no decode).
# Every sample times, alternately, under GNU time (%U %S, 10 ms steps):
#   whole process: INNER back-to-back runs of each tool on IN (strom: one pass per process);
#   marginal:      the same on the first 2000 packets of IN (start-up, probing) subtracted, for
#                  ffmpeg; for strom one process demuxing IN 10 x INNER times minus the same on
#                  the small file. That is the CPU per demux of the rest of the file, in MB/s.
# The median of REPS samples is reported for both tools, with the ratio ffmpeg / strom.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
REPS="${REPS:-5}"
INNER="${INNER:-5}"
PASSES=$((10 * INNER))
MEDIA="$ROOT/target/bench-media"
BASE="$MEDIA/bench_1080p_6m_20s.ts"
IN="$MEDIA/bench_1080p_6m_100s.ts"
WORK="$(mktemp -d /tmp/strom-tsdemux-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
log() { printf '[bench] %s\n' "$*" >&2; }

command -v ffmpeg >/dev/null 2>&1 || { log "ffmpeg is missing: run scripts/test.sh first (installs it)"; exit 1; }
[ -x /usr/bin/time ] || { log "GNU time (/usr/bin/time) is missing: apt-get install time"; exit 1; }
mkdir -p "$MEDIA"

if [ ! -s "$BASE" ]; then
  log "encoding $(basename "$BASE") (20 s 1080p25 H.264 High 6 Mbit/s + AAC, MPEG-TS)"
  ffmpeg -nostdin -y -v error \
    -f lavfi -i "testsrc2=size=1920x1080:rate=25:duration=20" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=20" \
    -c:v libx264 -preset veryfast -profile:v high -bf 3 \
    -g 50 -b:v 6000k -maxrate 6000k -bufsize 12000k \
    -c:a aac -b:a 128k -f mpegts "$MEDIA/.bench_1080p_6m_20s.ts"
  mv "$MEDIA/.bench_1080p_6m_20s.ts" "$BASE"
fi
if [ ! -s "$IN" ]; then
  log "looping $(basename "$BASE") to $(basename "$IN") (5 x 20 s, -c copy)"
  ffmpeg -nostdin -y -v error -stream_loop 4 -i "$BASE" -map 0 -c copy -f mpegts "$MEDIA/.bench_1080p_6m_100s.ts"
  mv "$MEDIA/.bench_1080p_6m_100s.ts" "$IN"
fi
SMALL=$((188 * 2000))
head -c "$SMALL" "$IN" >"$WORK/small.ts"

log "cargo bench --bench ts_demux --no-run"
BIN="$(cargo bench --bench ts_demux --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "ts_demux":
        print(m["executable"])
')"
[ -x "$BIN" ] || { log "the ts_demux bench binary did not build"; exit 1; }

# cpu TOOL FILE N: user+sys seconds and peak RSS (KiB) of
#   strom-runs:   N processes, one demux each;  strom-passes: one process, N demuxes;
#   ffmpeg-runs:  N ffmpeg processes.
cpu() {
  local tool="$1" file="$2" n="$3"
  case "$tool" in
    strom-passes)
      /usr/bin/time -f "%U %S %M" -o "$WORK/t" \
        env STROM_TS_DEMUX_FILE="$file" STROM_TS_DEMUX_PASSES="$n" "$BIN" >"$WORK/out" ;;
    strom-runs)
      /usr/bin/time -f "%U %S %M" -o "$WORK/t" sh -c '
        i=0; while [ "$i" -lt "$3" ]; do
          STROM_TS_DEMUX_FILE="$2" "$1" >/dev/null || exit 1; i=$((i + 1)); done' sh "$BIN" "$file" "$n" ;;
    ffmpeg-runs)
      /usr/bin/time -f "%U %S %M" -o "$WORK/t" sh -c '
        i=0; while [ "$i" -lt "$2" ]; do
          ffmpeg -v error -nostdin -i "$1" -map 0 -c copy -f null - || exit 1; i=$((i + 1)); done' sh "$file" "$n" ;;
  esac
  awk '{ printf "%.3f %d\n", $1 + $2, $3 }' "$WORK/t"
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

SIZE=$(stat -c %s "$IN")
FRAMES=$(STROM_TS_DEMUX_FILE="$IN" "$BIN" | awk '{ print $1 }')
log "input: $IN ($SIZE bytes, $FRAMES frames); $REPS samples, tools alternating"
for f in sw fw sm sm0 fw0; do : >"$WORK/$f"; done
for _ in $(seq "$REPS"); do
  cpu strom-runs "$IN" "$INNER" | awk '{ print $1 }' >>"$WORK/sw"
  cpu ffmpeg-runs "$IN" "$INNER" | awk '{ print $1 }' >>"$WORK/fw"
  cpu strom-passes "$IN" "$PASSES" | awk '{ print $1 }' >>"$WORK/sm"
  cpu strom-passes "$WORK/small.ts" "$PASSES" | awk '{ print $1 }' >>"$WORK/sm0"
  cpu ffmpeg-runs "$WORK/small.ts" "$INNER" | awk '{ print $1 }' >>"$WORK/fw0"
done
SW=$(median <"$WORK/sw"); FW=$(median <"$WORK/fw"); SM=$(median <"$WORK/sm")
SM0=$(median <"$WORK/sm0"); FW0=$(median <"$WORK/fw0")
RSS_S=$(cpu strom-passes "$IN" 1 | awk '{ print $2 }')
RSS_F=$(cpu ffmpeg-runs "$IN" 1 | awk '{ print $2 }')
awk -v sw="$SW" -v fw="$FW" -v sm="$SM" -v sm0="$SM0" -v fw0="$FW0" -v n="$INNER" -v p="$PASSES" \
    -v size="$SIZE" -v small="$SMALL" -v frames="$FRAMES" -v rs="$RSS_S" -v rf="$RSS_F" 'BEGIN {
  mb = (size - small) / 1e6
  sr = sw / n; fr = fw / n
  st = (sm - sm0) / p; ft = (fw - fw0) / n
  if (st <= 0) st = 0.0001
  if (ft <= 0) ft = 0.0001
  printf "input            %.1f MB MPEG-TS, %d frames (H.264 High 1080p25 6 Mbit/s + AAC-LC, 100 s)\n", size / 1e6, frames
  printf "                 per run, whole process | marginal (the file minus its first %.2f MB)\n", small / 1e6
  printf "strom TsDemuxer  %6.3f s user+sys       | %.4f s  %6.0f MB/s  peak RSS %d KiB\n", sr, st, mb / st, rs
  printf "ffmpeg -c copy   %6.3f s user+sys       | %.4f s  %6.0f MB/s  peak RSS %d KiB\n", fr, ft, mb / ft, rf
  printf "ratio            ffmpeg / strom: %.1fx whole process, %.1fx marginal\n", fr / sr, ft / st
}'
