#!/usr/bin/env bash
# Acceptance benchmark: protected VOD packaging against the same package in the clear, CPU per
# media minute, strom's package example and ffmpeg's own encrypting muxers.
#
#   ./scripts/bench_package_encrypt.sh     (env: REPS=7 samples, median; INNER=3 runs per sample)
#
# Input: the 1080p ~6 Mbit/s H.264 High + AAC MP4s of bench_dash_vs_ffmpeg.sh (generated the same
# way, cached in target/bench-media/: one minute encoded by x264, five minutes that minute looped
# with -c copy). Output on tmpfs (/dev/shm). Each variant runs REPS samples (median) of INNER
# back-to-back whole processes, user + system CPU of them all (getrusage through python3, else
# GNU time), divided by INNER; the samples of all
# variants are interleaved so that load drift hits them alike.
#
#   strom  dash        package IN --out D --format dash --segment-duration 6
#          cenc, cbcs  ... --encrypt cenc|cbcs --key K --kid KID
#          hls-ts      package IN --out D --format hls-ts --segment-duration 6
#          aes128      ... --encrypt aes128 --key K
#          sample-aes  ... --encrypt sample-aes --key K
#   ffmpeg fmp4        ffmpeg -i IN -map 0 -c copy -f mp4 -movflags frag_keyframe+empty_moov
#                             -min_frag_duration 6000000 D/out.mp4
#          fmp4-cenc   ... -encryption_scheme cenc-aes-ctr -encryption_key K -encryption_kid KID
#                      (ffmpeg 5.1's -f dash does not encrypt with these options, and with
#                      -format_options it encrypts the mdat but writes no senc: not a usable
#                      reference, so the fragmented MP4 muxer stands in)
#          hls         ffmpeg -i IN -map 0 -c copy -f hls -hls_time 6 -hls_playlist_type vod
#          hls-aes128  ... -hls_key_info_file KEYINFO
#
# CPU s per media minute, start-up removed = (cpu(5 min) - cpu(1 min)) / 4. Ratios: each
# encrypted variant over its clear one, per media minute and for the whole 5-minute run.
# Target (acceptance): strom's whole-package CENC at most 1.15x the CPU of the same package in
# the clear, per media minute. For scale, the last lines put openssl's AES-CTR cost of a media
# minute's bytes (measured in the same run) against the clear package's CPU per media minute. Exits 1 when a run fails; prints PASS or FAIL for the target.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
REPS="${REPS:-7}"
INNER="${INNER:-3}"
MEDIA="$ROOT/target/bench-media"
PACKAGE="$ROOT/target/release/examples/package"
WORK="$(mktemp -d /dev/shm/strom-encrypt-bench-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
log() { printf '[bench-encrypt] %s\n' "$*" >&2; }

KEY=3bda3329158a4789880816a70e7e436d
KID=eb676abbcb345e96bbcf616630f1a3da

command -v ffmpeg >/dev/null 2>&1 || { log "ffmpeg is missing: run scripts/test.sh first (installs it)"; exit 1; }
# CPU_TIME FILE CMD...: runs CMD, writes "user sys" seconds of it and its descendants to FILE.
# python3's getrusage gives microseconds; GNU time prints hundredths (a tenth of a run's
# per-minute difference), so it is only the fallback.
if command -v python3 >/dev/null 2>&1; then
  # (The difference: a python3 launcher, such as pyenv's, may have run children first.)
  CPU_TIME=(python3 -c 'import resource, subprocess, sys
a = resource.getrusage(resource.RUSAGE_CHILDREN)
rc = subprocess.run(sys.argv[2:]).returncode
b = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write("%.6f %.6f\n" % (b.ru_utime - a.ru_utime, b.ru_stime - a.ru_stime))
sys.exit(rc)')
elif [ -x /usr/bin/time ]; then
  CPU_TIME=(/usr/bin/time -f '%U %S' -o)
else
  log "neither python3 nor GNU time (/usr/bin/time): run scripts/test.sh first"; exit 1
fi
mkdir -p "$MEDIA"

# ------------------------------------------------------------------ input (as bench_dash_vs_ffmpeg.sh)
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

# ------------------------------------------------------------------ strom binary, ffmpeg key info
log "cargo build --release --example package"
cargo build --release --example package >&2
[ -x "$PACKAGE" ] || { log "FAILED: $PACKAGE is missing after the build"; exit 1; }
printf '%s' "$KEY" | xxd -r -p >"$WORK/key.bin"
[ "$(stat -c %s "$WORK/key.bin")" = 16 ] || { log "cannot write the key file (xxd)"; exit 1; }
printf 'key.bin\n%s\n' "$WORK/key.bin" >"$WORK/keyinfo"

# ------------------------------------------------------------------ variants
# name|tool|what must exist after a run|arguments (word-split; D is the output directory)
VARIANTS=(
  "dash|strom|manifest.mpd|--format dash --segment-duration 6"
  "cenc|strom|manifest.mpd|--format dash --segment-duration 6 --encrypt cenc --key $KEY --kid $KID"
  "cbcs|strom|manifest.mpd|--format dash --segment-duration 6 --encrypt cbcs --key $KEY --kid $KID"
  "hls-ts|strom|index.m3u8|--format hls-ts --segment-duration 6"
  "aes128|strom|index.m3u8|--format hls-ts --segment-duration 6 --encrypt aes128 --key $KEY"
  "sample-aes|strom|index.m3u8|--format hls-ts --segment-duration 6 --encrypt sample-aes --key $KEY"
  "fmp4|ffmpeg|out.mp4|-f mp4 -movflags frag_keyframe+empty_moov -min_frag_duration 6000000"
  "fmp4-cenc|ffmpeg|out.mp4|-encryption_scheme cenc-aes-ctr -encryption_key $KEY -encryption_kid $KID -f mp4 -movflags frag_keyframe+empty_moov -min_frag_duration 6000000"
  "hls|ffmpeg|index.m3u8|-f hls -hls_time 6 -hls_playlist_type vod"
  "hls-aes128|ffmpeg|index.m3u8|-f hls -hls_time 6 -hls_playlist_type vod -hls_key_info_file $WORK/keyinfo"
)
# encrypted variant -> its clear variant
declare -A CLEAR=([cenc]=dash [cbcs]=dash [aes128]=hls-ts [sample-aes]=hls-ts [fmp4-cenc]=fmp4 [hls-aes128]=hls)

# measure VARIANT IN N: one CPU_TIME sample of N back-to-back runs (each into its own
# directory); prints CPU seconds per run; non-zero on failure.
RUN=0
measure() {
  local spec="$1" in="$2" n="$3"
  local name tool check args
  IFS='|' read -r name tool check args <<<"$spec"
  RUN=$((RUN + 1))
  local out="$WORK/out$RUN" tf="$WORK/time$RUN" lg="$WORK/log$RUN"
  mkdir -p "$out"
  local rc=0
  "${CPU_TIME[@]}" "$tf" bash -c '
    set -e; tool=$1 in=$2 out=$3 n=$4 package=$5 check=$6; shift 6
    for ((i = 0; i < n; i++)); do
      d="$out/$i"; mkdir -p "$d"
      if [ "$tool" = strom ]; then
        "$package" "$in" --out "$d" "$@" >/dev/null
      else
        ffmpeg -nostdin -v error -i "$in" -map 0 -c copy "$@" "$d/$check"
      fi
    done' measure "$tool" "$in" "$out" "$n" "$PACKAGE" "$check" $args >"$lg" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ] || [ ! -s "$out/0/$check" ]; then
    log "$name failed on $(basename "$in") (exit $rc): $(tail -3 "$lg" | tr '\n' ' ')"
    rm -rf "$out"
    return 1
  fi
  if [ "$name" = cenc ] && ! grep -q 'value="cenc"' "$out/0/manifest.mpd"; then
    log "cenc: the MPD has no cenc ContentProtection"; rm -rf "$out"; return 1
  fi
  rm -rf "$out"
  tail -1 "$tf" | awk -v n="$n" '{ printf "%.4f\n", ($1 + $2) / n }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A SAMPLES CPU
FAILED=0
for ((r = 0; r < REPS; r++)); do
  for len in 1m 5m; do
    in="$MEDIA/1080p_${len}.mp4"
    for spec in "${VARIANTS[@]}"; do
      name="${spec%%|*}"
      if cpu=$(measure "$spec" "$in" "$INNER"); then
        SAMPLES[$name,$len]+="$cpu"$'\n'
      else
        FAILED=1
      fi
    done
  done
  log "sample $((r + 1))/$REPS done"
done

per_min() { awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/) printf "%.4f", (b - a) / 4; else print "n/a" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^-?[0-9.]+$/ && b ~ /^-?[0-9.]+$/ && b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo
echo "MP4 (1080p ~6 Mbit/s H.264 High + AAC) -> protected VOD package vs the same package in the clear,"
echo "6 s segments, output on tmpfs; cpu = user + sys of one run (median of $REPS samples of $INNER runs);"
echo "s/min = CPU seconds per media minute, start-up removed: (cpu(5 min) - cpu(1 min)) / 4;"
echo "x clear = this variant over its clear variant, per media minute and for the whole 5-minute run"
printf '%-7s %-11s | %8s %8s %8s | %9s %9s\n' tool variant "cpu 1m" "cpu 5m" "s/min" "x clear/m" "x clear 5m"
declare -A PERMIN
for spec in "${VARIANTS[@]}"; do
  IFS='|' read -r name tool _ _ <<<"$spec"
  for len in 1m 5m; do
    CPU[$name,$len]=$(printf '%s' "${SAMPLES[$name,$len]:-}" | median)
  done
  PERMIN[$name]=$(per_min "${CPU[$name,1m]}" "${CPU[$name,5m]}")
done
for spec in "${VARIANTS[@]}"; do
  IFS='|' read -r name tool _ _ <<<"$spec"
  rm_="" rw=""
  if [ -n "${CLEAR[$name]:-}" ]; then
    c="${CLEAR[$name]}"
    rm_=$(ratio "${PERMIN[$name]}" "${PERMIN[$c]}")
    rw=$(ratio "${CPU[$name,5m]}" "${CPU[$c,5m]}")
  fi
  printf '%-7s %-11s | %8s %8s %8s | %9s %9s\n' "$tool" "$name" "${CPU[$name,1m]}" "${CPU[$name,5m]}" \
    "${PERMIN[$name]}" "$rm_" "$rw"
done

cenc_ratio=$(ratio "${PERMIN[cenc]}" "${PERMIN[dash]}")

# The headroom the target leaves: AES-CTR alone over a media minute's bytes, at openssl's
# rate on this machine now (16 KiB buffers in cache, CPU time), against the clear package's
# CPU per media minute. No packager can encrypt for less than its cipher costs.
bytes_per_min=$(( ($(stat -c %s "$MEDIA/1080p_5m.mp4") - $(stat -c %s "$MEDIA/1080p_1m.mp4")) / 4 ))
ctr_k=$(openssl speed -seconds 2 -evp aes-128-ctr -bytes 16384 2>/dev/null | tail -n 1 | awk '{ v = $NF; sub(/k$/, "", v); print v }')
echo
if [[ "$ctr_k" =~ ^[0-9.]+$ ]] && [ "${PERMIN[dash]}" != n/a ]; then
  awk -v b="$bytes_per_min" -v k="$ctr_k" -v c="${PERMIN[dash]}" 'BEGIN {
    ms = b / (k * 1000) * 1000; cm = c * 1000;
    printf "AES-CTR alone over a media minute (%.1f MB) at openssl'"'"'s %.0f MB/s: %.2f ms = %.1f%% of the clear package'"'"'s %.2f ms per media minute (the 1.15x target leaves %.2f ms)\n", b / 1e6, k / 1000, ms, 100 * ms / cm, cm, 0.15 * cm }'
fi
if [ "$FAILED" = 1 ] || [ "$cenc_ratio" = n/a ]; then
  echo "bench_package_encrypt: INCOMPLETE (a run failed)"
  exit 1
fi
verdict=$(awk -v r="$cenc_ratio" 'BEGIN { print (r <= 1.15) ? "PASS" : "FAIL" }')
echo "strom CENC / clear DASH, CPU per media minute: $cenc_ratio (target <= 1.15): $verdict"
echo "bench_package_encrypt: done"
