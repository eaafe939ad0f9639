#!/usr/bin/env bash
# Acceptance benchmark: MP4 -> CMAF/DASH VOD, strom's packager example vs ffmpeg's DASH muxer,
# CPU per media minute and peak RSS.
#
#   ./scripts/bench_dash_vs_ffmpeg.sh       (env: REPS=3 samples, median; INNER=3 runs per sample)
#
# Input (generated once, cached in target/bench-media/, shared with bench_vs_ffmpeg.sh): H.264 High
# (B-frames, keyframe every 2 s) + AAC-LC 48 kHz stereo, 25 fps, 1920x1080 ~6 Mbit/s. One minute is
# encoded with x264 (-preset veryfast); the 5-minute file is that minute looped with `-c copy`.
#
# For both inputs, REPS samples (median) of whole processes under GNU time (%U %S %M), output on
# tmpfs (/dev/shm); a sample times INNER back-to-back runs and divides by INNER:
#   strom:  target/release/examples/package IN --out DIR --format dash --segment-duration 6
#   ffmpeg: ffmpeg -v error -i IN -map 0 -c copy -f dash -seg_duration 6 -use_template 1
#           -use_timeline 1 DIR/manifest.mpd
# CPU s per media minute, start-up removed = (cpu(5 min) - cpu(1 min)) / 4, and strom/ffmpeg.
# Peak RSS: the largest %M of the 5-minute samples. Exits 1 when a side fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
REPS="${REPS:-3}"
INNER="${INNER:-3}"
MEDIA="$ROOT/target/bench-media"
PACKAGE="$ROOT/target/release/examples/package"
WORK="$(mktemp -d /dev/shm/strom-dash-bench-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
log() { printf '[bench-dash] %s\n' "$*" >&2; }

command -v ffmpeg >/dev/null 2>&1 || { log "ffmpeg is missing: run scripts/test.sh first (installs it)"; exit 1; }
[ -x /usr/bin/time ] || { log "GNU time (/usr/bin/time) is missing: run scripts/test.sh first (apt-get install time)"; exit 1; }
mkdir -p "$MEDIA"

# ------------------------------------------------------------------ input (as bench_vs_ffmpeg.sh)
if [ ! -s "$MEDIA/1080p_1m.mp4" ]; then
  log "encoding 1080p_1m.mp4 (60 s 1920x1080 H.264 High 6M + AAC)"
  ffmpeg -nostdin -v error -y \
    -f lavfi -i "testsrc2=size=1920x1080:rate=25:duration=60" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=60" \
    -c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p -bf 3 \
    -b:v 6M -maxrate 6M -bufsize 12M -g 50 -keyint_min 50 -sc_threshold 0 \
    -c:a aac -ar 48000 -ac 2 -b:a 128k \
    "$MEDIA/1080p_1m.mp4.tmp.mp4"
  mv "$MEDIA/1080p_1m.mp4.tmp.mp4" "$MEDIA/1080p_1m.mp4"
fi
if [ ! -s "$MEDIA/1080p_5m.mp4" ]; then
  log "looping 1080p_1m.mp4 to 1080p_5m.mp4 (-c copy)"
  ffmpeg -nostdin -v error -y -stream_loop 4 -i "$MEDIA/1080p_1m.mp4" -map 0 -c copy \
    "$MEDIA/1080p_5m.mp4.tmp.mp4"
  mv "$MEDIA/1080p_5m.mp4.tmp.mp4" "$MEDIA/1080p_5m.mp4"
fi

# ------------------------------------------------------------------ strom binary
log "cargo build --release --example package"
cargo build --release --example package >&2
[ -x "$PACKAGE" ] || { log "FAILED: $PACKAGE is missing after the build"; exit 1; }

# ------------------------------------------------------------------ measuring
# measure TOOL IN N: one GNU time sample of N back-to-back runs (each into its own directory);
# prints "CPU_SECONDS_PER_RUN PEAK_RSS_KB"; non-zero on failure.
RUN=0
measure() {
  local tool="$1" in="$2" n="$3"
  RUN=$((RUN + 1))
  local out="$WORK/out$RUN" tf="$WORK/time$RUN" lg="$WORK/log$RUN"
  mkdir -p "$out"
  local rc=0
  /usr/bin/time -f '%U %S %M' -o "$tf" bash -c '
    set -e; tool=$1 in=$2 out=$3 n=$4 package=$5
    for ((i = 0; i < n; i++)); do
      d="$out/$i"; mkdir -p "$d"
      if [ "$tool" = strom ]; then
        "$package" "$in" --out "$d" --format dash --segment-duration 6 >/dev/null
      else
        ffmpeg -nostdin -v error -i "$in" -map 0 -c copy -f dash -seg_duration 6 \
          -use_template 1 -use_timeline 1 "$d/manifest.mpd"
      fi
    done' measure "$tool" "$in" "$out" "$n" "$PACKAGE" >"$lg" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ] || [ ! -s "$out/0/manifest.mpd" ]; then
    log "$tool failed on $(basename "$in") (exit $rc): $(tail -3 "$lg" | tr '\n' ' ')"
    rm -rf "$out"
    return 1
  fi
  rm -rf "$out"
  tail -1 "$tf" | awk -v n="$n" '{ printf "%.4f %d\n", ($1 + $2) / n, $3 }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A CPU RSS
FAILED=0
for len in 1m 5m; do
  in="$MEDIA/1080p_${len}.mp4"
  for tool in ffmpeg strom; do
    cpus="" rss=0
    for ((i = 0; i < REPS; i++)); do
      if line=$(measure "$tool" "$in" "$INNER"); then
        cpus+="${line%% *}"$'\n'
        [ "${line##* }" -gt "$rss" ] && rss="${line##* }"
      else
        FAILED=1
      fi
    done
    CPU[$tool,$len]=$(printf '%s' "$cpus" | median)
    RSS[$tool,$len]=$rss
    log "$(printf '%-6s %-2s cpu %8s s  peak RSS %6.1f MB' "$tool" "$len" "${CPU[$tool,$len]}" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')")"
  done
done

per_min() { awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/) printf "%.4f", (b - a) / 4; else print "n/a" }'; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

fm=$(per_min "${CPU[ffmpeg,1m]}" "${CPU[ffmpeg,5m]}")
sm=$(per_min "${CPU[strom,1m]}" "${CPU[strom,5m]}")
ratio=$(awk -v s="$sm" -v f="$fm" 'BEGIN { if (s ~ /^-?[0-9.]+$/ && f ~ /^-?[0-9.]+$/ && f > 0) printf "%.2f", s / f; else print "n/a" }')

echo
echo "MP4 (1080p ~6 Mbit/s H.264 High + AAC) -> CMAF/DASH VOD, 6 s segments, output on tmpfs"
echo "cpu = user + sys of one run (median of $REPS samples of $INNER runs each);"
echo "s/min = CPU seconds per media minute, start-up removed: (cpu(5 min) - cpu(1 min)) / 4"
printf '%-7s | %9s %9s %9s | %13s\n' tool "cpu 1m" "cpu 5m" "s/min" "peak RSS 5m"
printf '%-7s | %9s %9s %9s | %10s MB\n' ffmpeg "${CPU[ffmpeg,1m]}" "${CPU[ffmpeg,5m]}" "$fm" "$(mb "${RSS[ffmpeg,5m]}")"
printf '%-7s | %9s %9s %9s | %10s MB\n' strom "${CPU[strom,1m]}" "${CPU[strom,5m]}" "$sm" "$(mb "${RSS[strom,5m]}")"
echo "strom/ffmpeg CPU per media minute: $ratio (target <= 0.35)"

if [ "$FAILED" = 1 ] || [ "$ratio" = n/a ]; then
  echo "bench_dash_vs_ffmpeg: INCOMPLETE (a run failed)"
  exit 1
fi
echo "bench_dash_vs_ffmpeg: done"
