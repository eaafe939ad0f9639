#!/usr/bin/env bash
# Acceptance benchmark: strom's packager example vs `ffmpeg -c copy -f hls`, CPU per media minute.
#
#   ./scripts/bench_vs_ffmpeg.sh            (env: REPS=3 samples, median; INNER=5 runs per sample)
#
# Inputs (generated once, cached in target/bench-media/): H.264 High (B-frames, keyframe every 2 s)
# + AAC-LC 48 kHz stereo, 25 fps, at 1920x1080 ~6 Mbit/s and 640x360 ~1 Mbit/s. One minute is encoded
# (x264 -preset veryfast -b:v); the 5- and 10-minute files are that minute looped with `-c copy`
# (same bitstream, continuous timestamps), so generation stays bounded. FLV = the MP4 remuxed.
#
# For every input, REPS samples (median) of whole processes under GNU time (%U %S %M), output on tmpfs;
# a sample times INNER back-to-back runs and divides by INNER (GNU time prints 10 ms steps):
#   strom:  target/release/examples/package IN --out /dev/shm/... --segment-duration 6
#   ffmpeg: ffmpeg -v error -i IN -c copy -f hls -hls_time 6 -hls_playlist_type vod /dev/shm/.../index.m3u8
# CPU s per media minute, start-up removed = (cpu(5 min) - cpu(1 min)) / 4. Then peak RSS of the
# packager on the 10-minute 1080p input. If the example does not build, the ffmpeg side still runs,
# the strom columns say so, and the script exits 1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
REPS="${REPS:-3}"       # samples per input and tool; the median is reported
INNER="${INNER:-5}"     # back-to-back runs per sample (GNU time has 10 ms resolution)
MEDIA="$ROOT/target/bench-media"
PACKAGE="$ROOT/target/release/examples/package"
WORK="$(mktemp -d /dev/shm/strom-bench-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
log() { printf '[bench] %s\n' "$*" >&2; }

command -v ffmpeg >/dev/null 2>&1 || { log "ffmpeg is missing: run scripts/test.sh first (installs it)"; exit 1; }
[ -x /usr/bin/time ] || { log "GNU time (/usr/bin/time) is missing: run scripts/test.sh first (apt-get install time)"; exit 1; }
mkdir -p "$MEDIA"

# ------------------------------------------------------------------ inputs
# gen NAME SIZE BITRATE: NAME_1m.mp4 (encoded), NAME_5m.mp4 / NAME_10m.mp4 (looped), and .flv of each
encode_minute() {
  local out="$1" size="$2" rate="$3"
  [ -s "$out" ] && return 0
  log "encoding $(basename "$out") (60 s ${size} H.264 High ${rate} + AAC)"
  ffmpeg -nostdin -v error -y \
    -f lavfi -i "testsrc2=size=${size}:rate=25:duration=60" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=60" \
    -c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p -bf 3 \
    -b:v "$rate" -maxrate "$rate" -bufsize "$((2 * ${rate%M}))M" \
    -g 50 -keyint_min 50 -sc_threshold 0 \
    -c:a aac -ar 48000 -ac 2 -b:a 128k \
    "$out.tmp.mp4"
  mv "$out.tmp.mp4" "$out"
}
loop_to() {   # loop_to SRC_1m OUT MINUTES
  local src="$1" out="$2" minutes="$3"
  [ -s "$out" ] && return 0
  log "looping $(basename "$src") to $(basename "$out") (${minutes} min, -c copy)"
  ffmpeg -nostdin -v error -y -stream_loop "$((minutes - 1))" -i "$src" -map 0 -c copy "$out.tmp.mp4"
  mv "$out.tmp.mp4" "$out"
}
to_flv() {
  local src="$1" out="${1%.mp4}.flv"
  [ -s "$out" ] && return 0
  log "remuxing $(basename "$src") to FLV"
  ffmpeg -nostdin -v error -y -i "$src" -map 0 -c copy -f flv "$out.tmp"
  mv "$out.tmp" "$out"
}

encode_minute "$MEDIA/1080p_1m.mp4" 1920x1080 6M
encode_minute "$MEDIA/360p_1m.mp4" 640x360 1M
loop_to "$MEDIA/1080p_1m.mp4" "$MEDIA/1080p_5m.mp4" 5
loop_to "$MEDIA/1080p_1m.mp4" "$MEDIA/1080p_10m.mp4" 10
loop_to "$MEDIA/360p_1m.mp4" "$MEDIA/360p_5m.mp4" 5
for f in 1080p_1m 1080p_5m 1080p_10m 360p_1m 360p_5m; do to_flv "$MEDIA/$f.mp4"; done

# ------------------------------------------------------------------ strom binary
STROM_OK=1
log "cargo build --release --example package"
if ! cargo build --release --example package >&2; then
  STROM_OK=0
  log "=================================================================="
  log "FAILED: the packager example does not build (examples/package.rs)."
  log "Only the ffmpeg side is measured; strom columns show 'not built'."
  log "=================================================================="
elif [ ! -x "$PACKAGE" ]; then
  STROM_OK=0
  log "FAILED: $PACKAGE is missing after the build"
fi

# ------------------------------------------------------------------ measuring
# measure TOOL IN [N]: one GNU time sample of N back-to-back runs (each into its own output dir);
# prints "CPU_SECONDS_PER_RUN PEAK_RSS_KB"; non-zero on failure. N > 1 beats time's 10 ms resolution.
RUN=0
measure() {
  local tool="$1" in="$2" n="${3:-1}"
  RUN=$((RUN + 1))
  local out="$WORK/out$RUN" tf="$WORK/time$RUN" lg="$WORK/log$RUN"
  mkdir -p "$out"
  local rc=0
  /usr/bin/time -f '%U %S %M' -o "$tf" bash -c '
    set -e; tool=$1 in=$2 out=$3 n=$4 package=$5
    for ((i = 0; i < n; i++)); do
      d="$out/$i"; mkdir -p "$d"
      if [ "$tool" = strom ]; then
        "$package" "$in" --out "$d" --segment-duration 6
      else
        ffmpeg -nostdin -v error -i "$in" -c copy -f hls -hls_time 6 -hls_playlist_type vod "$d/index.m3u8"
      fi
    done' measure "$tool" "$in" "$out" "$n" "$PACKAGE" >"$lg" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ] || ! ls "$out"/0/*.m3u8 >/dev/null 2>&1; then
    log "$tool failed on $(basename "$in") (exit $rc): $(tail -3 "$lg" | tr '\n' ' ')"
    rm -rf "$out"
    return 1
  fi
  rm -rf "$out"
  tail -1 "$tf" | awk -v n="$n" '{ printf "%.4f %d\n", ($1 + $2) / n, $3 }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# cpu_median TOOL IN: median CPU seconds over REPS runs, or "fail"
cpu_median() {
  local tool="$1" in="$2" i line values=""
  for ((i = 0; i < REPS; i++)); do
    line=$(measure "$tool" "$in" "$INNER") || { echo fail; return 0; }
    values+="${line%% *}"$'\n'
  done
  printf '%s' "$values" | median
}

declare -A CPU
for res in 1080p 360p; do
  for ext in mp4 flv; do
    for len in 1m 5m; do
      in="$MEDIA/${res}_${len}.${ext}"
      CPU[ffmpeg,$res,$ext,$len]=$(cpu_median ffmpeg "$in")
      if [ "$STROM_OK" = 1 ]; then
        CPU[strom,$res,$ext,$len]=$(cpu_median strom "$in")
      else
        CPU[strom,$res,$ext,$len]="not built"
      fi
      log "$(printf '%-5s %-3s %-2s  ffmpeg %8s s  strom %9s s' "$res" "$ext" "$len" "${CPU[ffmpeg,$res,$ext,$len]}" "${CPU[strom,$res,$ext,$len]}")"
    done
  done
done

per_min() {   # per_min CPU1 CPU5 -> CPU seconds per media minute without start-up
  awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/) printf "%.4f", (b - a) / 4; else print "n/a" }'
}
ratio() { awk -v s="$1" -v f="$2" 'BEGIN { if (s ~ /^-?[0-9.]+$/ && f ~ /^-?[0-9.]+$/ && f > 0) printf "%.2f", s / f; else print "n/a" }'; }

echo
echo "CPU seconds per media minute, start-up removed: (cpu(5 min) - cpu(1 min)) / 4"
echo "cpu = user + sys of one run (median of $REPS samples of $INNER runs each)"
echo "output on tmpfs ($WORK); segment duration 6 s"
printf '%-8s %-4s | %10s %10s %12s | %10s %10s %12s | %13s\n' \
  input cont "ffmpeg 1m" "ffmpeg 5m" "ffmpeg s/min" "strom 1m" "strom 5m" "strom s/min" "strom/ffmpeg"
FAILED=0
for res in 1080p 360p; do
  for ext in mp4 flv; do
    f1=${CPU[ffmpeg,$res,$ext,1m]} f5=${CPU[ffmpeg,$res,$ext,5m]}
    s1=${CPU[strom,$res,$ext,1m]} s5=${CPU[strom,$res,$ext,5m]}
    fm=$(per_min "$f1" "$f5"); sm=$(per_min "$s1" "$s5")
    r=$(ratio "$sm" "$fm")
    [ "$r" = n/a ] && FAILED=1
    printf '%-8s %-4s | %10s %10s %12s | %10s %10s %12s | %13s\n' "$res" "$ext" "$f1" "$f5" "$fm" "$s1" "$s5" "$sm" "$r"
  done
done

echo
if [ "$STROM_OK" = 1 ]; then
  for ext in mp4 flv; do
    in="$MEDIA/1080p_10m.$ext"
    if line=$(measure strom "$in"); then
      awk -v k="${line##* }" -v n="$(basename "$in")" 'BEGIN { printf "peak RSS of package on %s (10 min 1080p): %.1f MB\n", n, k / 1024 }'
    else
      echo "peak RSS of package on $(basename "$in"): run failed"; FAILED=1
    fi
  done
  line=$(measure ffmpeg "$MEDIA/1080p_10m.mp4") \
    && awk -v k="${line##* }" 'BEGIN { printf "(for reference, ffmpeg on 1080p_10m.mp4: %.1f MB)\n", k / 1024 }'
else
  echo "peak RSS of package: not measured (example not built)"
fi

if [ "$FAILED" = 1 ] || [ "$STROM_OK" = 0 ]; then
  echo "bench_vs_ffmpeg: INCOMPLETE (strom side failed or not built)"
  exit 1
fi
echo "bench_vs_ffmpeg: done"
