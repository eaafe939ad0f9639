#!/usr/bin/env bash
# Acceptance benchmark: strom's live origin (examples/live_origin.rs) vs nginx-rtmp, same job, same run.
#
#   ./scripts/bench_live_vs_nginx.sh   (env: STREAMS=20 WARMUP=16 MEASURE=30 REPS=3, STROM_ARGS="--cmaf off")
#
# Job: STREAMS publishers push RTMP into the server, which serves live HLS (MPEG-TS, 2 s segments,
# 6-segment window). Input (generated once, cached): target/bench-media/live_1m.flv, 60 s of
# testsrc2 640x360 25 fps H.264 High (x264 veryfast, 900k capped, keyframe every 2 s = GOP 2 s)
# + AAC-LC 48 kHz 96k, i.e. ~1 Mbit/s. Each publisher is
#   ffmpeg -nostdin -v error -re -stream_loop -1 -i live_1m.flv -c copy -f flv rtmp://127.0.0.1:P/live/sN
#
# Servers (free ports on 127.0.0.1 only; HLS output of nginx on tmpfs under /dev/shm):
#   strom: target/release/examples/live_origin --rtmp 127.0.0.1:P --http 127.0.0.1:H $STROM_ARGS
#          (by default it packages CMAF too: fMP4 HLS and DASH beside the TS HLS nginx-rtmp makes;
#          STROM_ARGS="--cmaf off" measures the same job as nginx-rtmp's, TS HLS only)
#          -> /live/sN/media.m3u8, segments kept in the process memory (stored_bytes in /streams.json)
#   nginx: nginx + libnginx-mod-rtmp, 1 worker, `live on; hls on; hls_fragment 2s;
#          hls_playlist_length 12s; hls_cleanup on`, config written below -> /hls/sN.m3u8
#
# Method, for each server in turn (strom, then nginx-rtmp):
#   1. start it, record idle RSS (VmRSS; nginx = master + worker);
#   2. start the publishers, wait WARMUP s so every window is full and steady;
#   3. CPU = utime + stime (/proc/PID/stat fields 14 + 15, / CLK_TCK) of the server process(es), and
#      apart of the publishers, sampled at both ends of a MEASURE s window;
#      CPU % of one core per stream = delta_cpu_s / window_s / streams * 100;
#   4. at the end of the window: RSS and VmHWM; strom net RSS per stream =
#      (RSS - idle RSS - kept segment bytes) / streams; nginx RSS per stream = (RSS - idle RSS) / streams
#      (its segments live on tmpfs, reported for information); also strom's RSS beyond the stored
#      segments AND the media of the segments being cut (pending_bytes in /streams.json; nginx-rtmp
#      writes those to its tmpfs files as they come);
#   5. correctness: every stream's media playlist lists >= 3 segments and its MEDIA-SEQUENCE rises
#      between two fetches ~4 s apart; ffprobe decodes the newest segment of 3 sampled streams as
#      h264 + aac (with frames of both); every publisher still runs at the end of the window;
#   6. stop the publishers; then, with the server still running, REPS times on a fresh name: start ONE
#      publisher and poll its media playlist every 10 ms until it lists a segment; time from the
#      publisher's process start (median). For strom also from its `publish NAME` stderr line.
#   Then stop the server. Targets (PASS/FAIL lines, not the exit code): server CPU strom/nginx <= 0.5,
#   strom net RSS <= 256 KB/stream (beyond stored, and beyond stored + open segments), strom first
#   playlist <= nginx's + 0.05 s (both ~ GOP + start-up) and <= GOP + 0.05 s after the accepted publish.
# Exit 1 only for correctness failures (or a server that does not start); figures are always printed.
# Output: a table on stdout, target/bench-live/summary.json, logs in target/bench-live/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
STREAMS="${STREAMS:-20}"   # concurrent publishers
WARMUP="${WARMUP:-16}"     # s between the publishers' start and the CPU window
MEASURE="${MEASURE:-30}"   # s of the CPU window
REPS="${REPS:-3}"          # first-playlist samples per server (median)
GOP=2.000
MEDIA="$ROOT/target/bench-media"
INPUT="$MEDIA/live_1m.flv"
OUT="$ROOT/target/bench-live"
ORIGIN="$ROOT/target/release/examples/live_origin"
HZ="$(getconf CLK_TCK)"
WORK="$(mktemp -d /dev/shm/strom-bench-live-XXXXXX)"
log() { printf '[bench-live] %s\n' "$*" >&2; }

# Every process this script starts is recorded here; the trap ends only those, by PID.
STARTED=()
forget() {   # forget PID...: ended and reaped, never signal that PID again
  local p q keep=()
  for q in "${STARTED[@]}"; do
    for p in "$@"; do [ "$q" = "$p" ] && continue 2; done
    keep+=("$q")
  done
  STARTED=("${keep[@]}")
}
# pause SECONDS: an interruptible sleep (a trap runs at once, not when a foreground sleep ends)
SLEEPER=""
pause() {
  sleep "$1" &
  SLEEPER=$!
  wait "$SLEEPER"
  SLEEPER=""
}
cleanup() {
  local p
  [ -n "$SLEEPER" ] && kill "$SLEEPER" 2>/dev/null
  for p in "${STARTED[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${STARTED[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in ffmpeg ffprobe curl python3 /usr/sbin/nginx; do
  command -v "$tool" >/dev/null 2>&1 || { log "$tool is missing"; exit 1; }
done
[ -f /usr/lib/nginx/modules/ngx_rtmp_module.so ] || { log "libnginx-mod-rtmp is missing"; exit 1; }
mkdir -p "$MEDIA" "$OUT"
rm -f "$OUT"/*.log "$OUT/summary.json"

# ------------------------------------------------------------------ input
if [ ! -s "$INPUT" ]; then
  log "encoding $(basename "$INPUT") (60 s 640x360 25 fps H.264 High 900k GOP 2 s + AAC 48 kHz 96k)"
  ffmpeg -nostdin -v error -y \
    -f lavfi -i "testsrc2=size=640x360:rate=25:duration=60" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=60" \
    -c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p \
    -b:v 900k -maxrate 900k -bufsize 1800k -g 50 -keyint_min 50 -sc_threshold 0 \
    -c:a aac -ar 48000 -ac 2 -b:a 96k \
    -f flv "$INPUT.tmp"
  mv "$INPUT.tmp" "$INPUT"
fi

# ------------------------------------------------------------------ strom binary
STROM_OK=1
log "cargo build --release --example live_origin"
if ! cargo build --release --example live_origin >&2 || [ ! -x "$ORIGIN" ]; then
  STROM_OK=0
  log "FAILED: examples/live_origin.rs does not build; only nginx-rtmp is measured"
fi

# ------------------------------------------------------------------ helpers
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now_ns() { date +%s%N; }
# cpu_ticks PID...: "UTIME STIME" summed, ticks (fields 14, 15; parsed after the ")" closing comm)
cpu_ticks() {
  local p line f u=0 s=0
  for p in "$@"; do
    line=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    read -ra f <<<"${line##*) }"   # f[0] = field 3 (state), so utime = f[11], stime = f[12]
    u=$((u + f[11])) s=$((s + f[12]))
  done
  echo "$u $s"
}
# status_kb FIELD PID...: VmRSS / VmHWM summed, kB
status_kb() {
  local f="$1" p sum=0 v
  shift
  for p in "$@"; do
    v=$(awk -v f="$f:" '$1 == f { print $2 }' "/proc/$p/status" 2>/dev/null || true)
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}
alive() { kill -0 "$1" 2>/dev/null; }
# wait_http URL SECONDS: until the server answers anything
wait_http() {
  local url="$1" deadline=$(($(date +%s) + $2))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    curl -s -o /dev/null --max-time 1 "$url" && return 0
    sleep 0.1
  done
  return 1
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
isnum() { [[ "$1" =~ ^-?[0-9]+(\.[0-9]+)?$ ]]; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }   # calc FORMAT EXPR
ratio() { if isnum "$1" && isnum "$2" && awk -v b="$2" 'BEGIN { exit !(b > 0) }'; then calc %.2f "$1 / $2"; else echo n/a; fi; }

# Publish-to-first-playlist probe: starts ONE publisher itself (so t0 is the process start), polls the
# playlist every 10 ms until it lists a segment, and watches the server log for `publish NAME`.
# Prints "SECONDS_FROM_START SECONDS_FROM_PUBLISH_LINE" (the latter "n/a" without a log); exit 1 on timeout.
cat >"$WORK/first_playlist.py" <<'PY'
import os, re, signal, subprocess, sys, time, urllib.request
url, name, logpath, deadline_s = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
cmd = sys.argv[5:]
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
pat = re.compile(r"^publish (\S*/)?" + re.escape(name) + r" from ", re.M)
off = os.path.getsize(logpath) if logpath != "-" else 0
t0 = time.monotonic()
pub = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
t_line = None
buf = b""
try:
    while time.monotonic() - t0 < deadline_s:
        now = time.monotonic()
        if logpath != "-" and t_line is None:
            with open(logpath, "rb") as f:
                f.seek(off)
                chunk = f.read()
            off += len(chunk)
            buf += chunk
            if pat.search(buf.decode("utf-8", "replace")):
                t_line = now
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                body = r.read().decode("utf-8", "replace")
            if any(l.strip() and not l.startswith("#") for l in body.splitlines()):
                t = time.monotonic()
                rel = "n/a" if t_line is None else "%.3f" % (t - t_line)
                print("%.3f %s" % (t - t0, rel))
                sys.exit(0)
        except Exception:
            pass
        time.sleep(max(0.0, 0.010 - (time.monotonic() - now)))
    sys.exit(1)
finally:
    pub.terminate()
    try:
        pub.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pub.kill()
        pub.wait()
PY

FAILURES=()
fail() { FAILURES+=("$1: $2"); log "FAIL $1: $2"; }

# abs_url PLAYLIST_URL LINE
abs_url() {
  case "$2" in
    http://* | https://*) echo "$2" ;;
    /*) echo "$(sed -E 's|^(https?://[^/]+).*|\1|' <<<"$1")$2" ;;
    *) echo "${1%/*}/$2" ;;
  esac
}
# playlist_info URL: "SEGMENTS MEDIA_SEQUENCE NEWEST_URI" or "0 -1 -" when not fetched
playlist_info() {
  local body
  body=$(curl -s --fail --max-time 2 "$1") || { echo "0 -1 -"; return 0; }
  awk '/^#EXT-X-MEDIA-SEQUENCE:/ { split($0, a, ":"); seq = a[2] + 0 }
       /^[^#]/ && NF { n++; last = $0 }
       END { printf "%d %d %s\n", n, (seq == "" ? 0 : seq), (last == "" ? "-" : last) }' <<<"$body"
}

# ------------------------------------------------------------------ one server
declare -A R   # results: R[server,key]
# run_server strom|nginx
run_server() {
  local srv="$1" rtmp http purl spids=() ppids=() master="" i
  rtmp=$(free_port)
  http=$(free_port)
  while [ "$http" = "$rtmp" ]; do http=$(free_port); done
  local slog="$OUT/$srv-server.log"
  if [ "$srv" = strom ]; then
    # shellcheck disable=SC2086 # STROM_ARGS is a list of options
    "$ORIGIN" --rtmp "127.0.0.1:$rtmp" --http "127.0.0.1:$http" ${STROM_ARGS:-} >"$slog" 2>&1 &
    master=$!
    STARTED+=("$master")
    purl() { echo "http://127.0.0.1:$http/live/$1/media.m3u8"; }
    # streams_json: "SUM_STORED_BYTES PUBLISHING_STREAMS" from /streams.json (saved in $OUT)
    streams_json() {
      local js="$OUT/strom-streams.json"
      curl -s --fail --max-time 2 "http://127.0.0.1:$http/streams.json" >"$js" || echo '{}' >"$js"
      python3 -c '
import json, sys
try:
    s = json.load(open(sys.argv[1])).get("streams", [])
except Exception:
    s = []
print(sum(int(x.get("stored_bytes", 0)) for x in s), sum(1 for x in s if x.get("publishing")),
      sum(int(x.get("pending_bytes", 0)) for x in s))' "$js"
    }
    kept_bytes() { streams_json | cut -d' ' -f1; }
    wait_http "http://127.0.0.1:$http/streams.json" 10 || { fail "$srv" "server did not start: $(tail -3 "$slog" | tr '\n' ' ')"; return 0; }
    spids=("$master")
  else
    local nd="$WORK/nginx" hls="$WORK/nginx/hls"
    mkdir -p "$nd"/{body,proxy,fastcgi,uwsgi,scgi,logs} "$hls"
    local userline=""
    [ "$(id -u)" = 0 ] && userline="user root;"
    cat >"$nd/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
worker_processes 1;
daemon off;
master_process on;
$userline
pid $nd/nginx.pid;
error_log $nd/logs/error.log warn;
events { worker_connections 1024; }
rtmp {
    server {
        listen 127.0.0.1:$rtmp;
        chunk_size 4096;
        application live {
            live on;
            record off;
            hls on;
            hls_path $hls;
            hls_fragment 2s;
            hls_playlist_length 12s;
            hls_cleanup on;
        }
    }
}
http {
    access_log off;
    client_body_temp_path $nd/body;
    proxy_temp_path $nd/proxy;
    fastcgi_temp_path $nd/fastcgi;
    uwsgi_temp_path $nd/uwsgi;
    scgi_temp_path $nd/scgi;
    types {
        application/vnd.apple.mpegurl m3u8;
        video/mp2t ts;
    }
    server {
        listen 127.0.0.1:$http;
        location /hls/ {
            alias $hls/;
            add_header Cache-Control no-cache;
        }
    }
}
EOF
    /usr/sbin/nginx -t -q -e "$nd/logs/error.log" -p "$nd" -c "$nd/nginx.conf" 2>>"$slog" \
      || { fail "$srv" "config rejected: $(tail -3 "$slog" | tr '\n' ' ')"; return 0; }
    /usr/sbin/nginx -e "$nd/logs/error.log" -p "$nd" -c "$nd/nginx.conf" >"$slog" 2>&1 &
    master=$!
    STARTED+=("$master")
    purl() { echo "http://127.0.0.1:$http/hls/$1.m3u8"; }
    kept_bytes() { du -sb "$hls" | awk '{ print $1 }'; }
    wait_http "http://127.0.0.1:$http/" 10 || { fail "$srv" "server did not start: $(tail -3 "$nd/logs/error.log" | tr '\n' ' ')"; return 0; }
    local worker="" deadline=$(($(date +%s) + 5))
    while [ -z "$worker" ] && [ "$(date +%s)" -lt "$deadline" ]; do
      worker=$(pgrep -P "$master" | head -1 || true)
      [ -z "$worker" ] && sleep 0.1
    done
    [ -n "$worker" ] || { fail "$srv" "no nginx worker under master $master"; kill "$master"; wait "$master" || true; forget "$master"; return 0; }
    STARTED+=("$worker")
    spids=("$master" "$worker")
  fi
  sleep 1
  R[$srv,rss_idle]=$(status_kb VmRSS "${spids[@]}")
  log "$srv up (pids ${spids[*]}; rtmp :$rtmp, http :$http), idle RSS ${R[$srv,rss_idle]} kB"

  # -------- load
  for ((i = 1; i <= STREAMS; i++)); do
    ffmpeg -nostdin -v error -re -stream_loop -1 -i "$INPUT" -c copy -f flv \
      "rtmp://127.0.0.1:$rtmp/live/s$i" >"$OUT/$srv-pub-s$i.log" 2>&1 &
    ppids+=("$!")
    STARTED+=("$!")
  done
  log "$srv: $STREAMS publishers started, warm-up ${WARMUP} s"
  pause "$WARMUP"
  local t0 u0 s0 p0 t1 u1 s1 p1 x
  R[$srv,rss_start]=$(status_kb VmRSS "${spids[@]}")
  R[$srv,kept_start]=$(kept_bytes)
  t0=$(now_ns); read -r u0 s0 < <(cpu_ticks "${spids[@]}"); read -r p0 x < <(cpu_ticks "${ppids[@]}"); p0=$((p0 + x))
  log "$srv: measuring ${MEASURE} s"
  pause "$MEASURE"
  t1=$(now_ns); read -r u1 s1 < <(cpu_ticks "${spids[@]}"); read -r p1 x < <(cpu_ticks "${ppids[@]}"); p1=$((p1 + x))
  R[$srv,rss]=$(status_kb VmRSS "${spids[@]}")
  R[$srv,hwm]=$(status_kb VmHWM "${spids[@]}")
  local win
  win=$(calc %.3f "($t1 - $t0) / 1e9")
  R[$srv,window]=$win
  R[$srv,cpu_s]=$(calc %.2f "($u1 + $s1 - $u0 - $s0) / $HZ")
  R[$srv,user_s]=$(calc %.2f "($u1 - $u0) / $HZ")
  R[$srv,sys_s]=$(calc %.2f "($s1 - $s0) / $HZ")
  R[$srv,cpu]=$(calc %.4f "($u1 + $s1 - $u0 - $s0) / $HZ / $win / $STREAMS * 100")
  R[$srv,pub_cpu]=$(calc %.4f "($p1 - $p0) / $HZ / $win / $STREAMS * 100")
  for i in "${!spids[@]}"; do alive "${spids[$i]}" || fail "$srv" "server process ${spids[$i]} died during the window"; done
  for ((i = 0; i < STREAMS; i++)); do
    alive "${ppids[$i]}" || fail "$srv" "publisher s$((i + 1)) exited during the run: $(tail -2 "$OUT/$srv-pub-s$((i + 1)).log" | tr '\n' ' ')"
  done
  local kept live
  R[$srv,kept]=$(kept_bytes)
  if [ "$srv" = strom ]; then
    R[$srv,pending]=$(streams_json | cut -d' ' -f3)
    live=$(streams_json | cut -d' ' -f2)
    [ "$live" -ge "$STREAMS" ] || fail "$srv" "/streams.json lists $live publishing streams, expected $STREAMS"
    R[$srv,rss_net]=$(calc %.1f "(${R[$srv,rss]} - ${R[$srv,rss_idle]} - ${R[$srv,kept]} / 1024) / $STREAMS")
    R[$srv,rss_net_open]=$(calc %.1f "(${R[$srv,rss]} - ${R[$srv,rss_idle]} - (${R[$srv,kept]} + ${R[$srv,pending]}) / 1024) / $STREAMS")
    R[$srv,growth]=$(calc %.1f "(${R[$srv,rss]} - ${R[$srv,rss_start]}) - (${R[$srv,kept]} - ${R[$srv,kept_start]}) / 1024")
  else
    R[$srv,pending]=n/a
    R[$srv,rss_net_open]=n/a
    R[$srv,rss_net]=$(calc %.1f "(${R[$srv,rss]} - ${R[$srv,rss_idle]}) / $STREAMS")
    R[$srv,growth]=$(calc %.1f "${R[$srv,rss]} - ${R[$srv,rss_start]}")
  fi
  R[$srv,rss_gross]=$(calc %.1f "(${R[$srv,rss]} - ${R[$srv,rss_idle]}) / $STREAMS")
  log "$srv: server CPU ${R[$srv,cpu_s]} s (user ${R[$srv,user_s]}, sys ${R[$srv,sys_s]}) in ${win} s = ${R[$srv,cpu]} %/stream; RSS ${R[$srv,rss]} kB (idle ${R[$srv,rss_idle]}, window start ${R[$srv,rss_start]}, peak ${R[$srv,hwm]}); segment bytes ${R[$srv,kept_start]} -> ${R[$srv,kept]}; RSS growth in the window beyond segment bytes ${R[$srv,growth]} kB"

  # -------- correctness
  local -a seq1=()
  local info nseg seq uri
  for ((i = 1; i <= STREAMS; i++)); do
    read -r nseg seq uri < <(playlist_info "$(purl "s$i")")
    seq1[i]=$seq
    [ "$nseg" -ge 3 ] || fail "$srv" "s$i: playlist $(purl "s$i") lists $nseg segments (< 3)"
  done
  pause 4
  local ok_streams=0
  for ((i = 1; i <= STREAMS; i++)); do
    read -r nseg seq uri < <(playlist_info "$(purl "s$i")")
    if [ "$seq" -gt "${seq1[i]}" ] && [ "${seq1[i]}" -ge 0 ]; then
      ok_streams=$((ok_streams + 1))
    else
      fail "$srv" "s$i: MEDIA-SEQUENCE did not rise in 4 s (${seq1[i]} -> $seq)"
    fi
  done
  R[$srv,ok_streams]=$ok_streams
  # (a TS lists each stream twice, under its program and on its own: unique lines)
  local s url out err probed=0
  for s in $(printf '%s\n' 1 $(((STREAMS + 1) / 2)) "$STREAMS" | sort -nu); do
    read -r nseg seq uri < <(playlist_info "$(purl "s$s")")
    [ "$uri" != - ] || { fail "$srv" "s$s: no segment to probe"; continue; }
    url=$(abs_url "$(purl "s$s")" "$uri")
    err="$WORK/probe.err"
    out=$(ffprobe -v error -count_frames -show_entries stream=codec_name,nb_read_frames -of csv=p=0 "$url" 2>"$err" | grep . | sort -u | tr '\n' ' ') || true
    if [[ "$out" =~ ^aac,([0-9]+)\ h264,([0-9]+)\ $ ]] && [ "${BASH_REMATCH[1]}" -gt 0 ] && [ "${BASH_REMATCH[2]}" -gt 0 ] && [ ! -s "$err" ]; then
      probed=$((probed + 1))
      log "$srv: s$s newest segment $uri: $out"
    else
      fail "$srv" "s$s: ffprobe of $url gave '$out' $(head -c 300 "$err" | tr '\n' ' ')"
    fi
  done
  R[$srv,probed]=$probed

  # -------- stop the load, then first playlist on fresh names
  for i in "${ppids[@]}"; do kill "$i" 2>/dev/null || true; done
  for i in "${ppids[@]}"; do wait "$i" 2>/dev/null || true; done
  forget "${ppids[@]}"
  sleep 1
  local r line vals="" rel=""
  for ((r = 1; r <= REPS; r++)); do
    local name="first$r"
    line=$(python3 "$WORK/first_playlist.py" "$(purl "$name")" "$name" "$([ "$srv" = strom ] && echo "$slog" || echo -)" 20 \
      ffmpeg -nostdin -v error -re -stream_loop -1 -i "$INPUT" -c copy -f flv "rtmp://127.0.0.1:$rtmp/live/$name") \
      || { fail "$srv" "$name: no segment in the playlist within 20 s"; continue; }
    log "$srv: $name first playlist ${line% *} s from publisher start, ${line#* } s from publish line"
    vals+="${line% *}"$'\n'
    isnum "${line#* }" && rel+="${line#* }"$'\n'
    sleep 0.5
  done
  R[$srv,first]=$(printf '%s' "$vals" | median)
  R[$srv,first_rel]=$(printf '%s' "$rel" | median)

  # -------- stop the server
  kill "$master" 2>/dev/null || true
  local deadline=$(($(date +%s) + 10))
  while alive "$master" && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
  alive "$master" && kill -9 "$master" 2>/dev/null
  wait "$master" 2>/dev/null || true
  for i in "${spids[@]}"; do alive "$i" && kill "$i" 2>/dev/null; done
  forget "${spids[@]}"
  return 0
}

for k in pending rss_net_open kept_start growth user_s sys_s rss_start cpu pub_cpu rss_net rss_gross kept first first_rel rss rss_idle hwm cpu_s window ok_streams probed; do
  R[strom,$k]=n/a
  R[nginx,$k]=n/a
done
if [ "$STROM_OK" = 1 ]; then
  run_server strom
else
  fail strom "live_origin example not built"
fi
run_server nginx
cp "$WORK/nginx/nginx.conf" "$OUT/nginx.conf" 2>/dev/null || true

# ------------------------------------------------------------------ report
S() { echo "${R[strom,$1]}"; }
N() { echo "${R[nginx,$1]}"; }
echo
echo "streams=$STREAMS input=640x360 25fps ~1 Mbit/s GOP 2 s, measure ${MEASURE} s (warm-up ${WARMUP} s)"
printf '%-24s %14s %16s %8s\n' "" strom nginx-rtmp ratio
printf '%-24s %14s %16s %8s\n' "CPU %/stream" "$(S cpu)" "$(N cpu)" "$(ratio "$(S cpu)" "$(N cpu)")"
printf '%-24s %14s %16s %8s\n' "RSS KB/stream (net)" "$(S rss_net)" "$(N rss_net)" "$(ratio "$(S rss_net)" "$(N rss_net)")"
printf '%-24s %14s %16s %8s\n' "  beyond open segment too" "$(S rss_net_open)" "-" ""
printf '%-24s %14s %16s %8s\n' "RSS KB/stream (gross)" "$(S rss_gross)" "$(N rss_gross)" "$(ratio "$(S rss_gross)" "$(N rss_gross)")"
printf '%-24s %14s %16s %8s\n' "kept segment bytes" "$(S kept)" "(tmpfs $(N kept))" ""
printf '%-24s %14s %16s %8s\n' "open segment bytes" "$(S pending)" "(in tmpfs)" ""
printf '%-24s %14s %16s %8s\n' "server CPU s user/sys" "$(S user_s)/$(S sys_s)" "$(N user_s)/$(N sys_s)" ""
printf '%-24s %14s %16s %8s\n' "RSS kB idle/start/end" "$(S rss_idle)/$(S rss_start)/$(S rss)" "$(N rss_idle)/$(N rss_start)/$(N rss)" ""
printf '%-24s %14s %16s %8s\n' "RSS kB peak (VmHWM)" "$(S hwm)" "$(N hwm)" ""
printf '%-24s %14s %16s %8s\n' "RSS growth kB (window)" "$(S growth)" "$(N growth)" ""
printf '%-24s %14s %16s %8s\n' "publishers CPU %/str" "$(S pub_cpu)" "$(N pub_cpu)" ""
printf '%-24s %14s %16s %8s\n' "first playlist (s)" "$(S first)" "$(N first)" "$(ratio "$(S first)" "$(N first)")"
printf '%-24s %14s %16s %8s\n' "  from publish line (s)" "$(S first_rel)" "-" ""
printf '%-24s %14s %16s %8s\n' "streams ok / probed" "$(S ok_streams)/$(S probed)" "$(N ok_streams)/$(N probed)" ""
echo "CPU %/stream = server utime+stime / window / streams * 100 (one core); net RSS = (RSS - idle - kept segments) / streams"
echo "beyond open segment too = (RSS - idle - kept segments - media of the segments being cut, pending_bytes) / streams"
echo "RSS growth = RSS(end) - RSS(window start), minus the growth of kept segment bytes for strom (nginx: its RSS only)"
echo "first playlist = median of $REPS, from the publisher's process start (ffmpeg start-up included), GOP $GOP s"

echo
target() {   # target NAME OK(0/1/n/a) DETAIL
  local verdict=FAIL
  [ "$2" = 1 ] && verdict=PASS
  [ "$2" = n/a ] && verdict="FAIL (not measured)"
  printf '%-5s %s: %s\n' "$verdict" "$1" "$3"
  R[target,$1]=$verdict
}
cmp() { if isnum "$1" && isnum "$2"; then awk -v a="$1" -v b="$2" 'BEGIN { print (a <= b) ? 1 : 0 }'; else echo n/a; fi; }
cr=$(ratio "$(S cpu)" "$(N cpu)")
target cpu_ratio "$(cmp "$cr" 0.5)" "server CPU strom/nginx = $cr (target <= 0.5)"
target rss "$(cmp "$(S rss_net)" 256)" "strom net RSS $(S rss_net) KB/stream beyond stored segments (target <= 256)"
target rss_open "$(cmp "$(S rss_net_open)" 256)" "strom net RSS $(S rss_net_open) KB/stream beyond stored and open segments (target <= 256)"
gl=$(calc %.3f "$GOP + 0.05")
target first_playlist_gop "$(cmp "$(S first_rel)" "$gl")" "strom first playlist $(S first_rel) s after the accepted publish <= GOP + 0.05 s = $gl s"
lim=n/a
isnum "$(N first)" && lim=$(calc %.3f "$(N first) + 0.05")
target first_playlist "$(cmp "$(S first)" "$lim")" "strom $(S first) s <= nginx $(N first) s + 0.05 s = $lim s (GOP $GOP s, same measurement)"

# ------------------------------------------------------------------ summary.json
jv() { if isnum "$1"; then echo "$1"; else echo null; fi; }
{
  printf '{\n  "streams": %d, "warmup_s": %d, "measure_s": %d, "reps": %d, "gop_s": %s,\n' "$STREAMS" "$WARMUP" "$MEASURE" "$REPS" "$GOP"
  printf '  "input": "%s",\n' "$(basename "$INPUT")"
  for srv in strom nginx; do
    printf '  "%s": {"cpu_pct_per_stream": %s, "server_cpu_s": %s, "server_user_s": %s, "server_sys_s": %s, "window_s": %s, "publishers_cpu_pct_per_stream": %s,' \
      "$srv" "$(jv "${R[$srv,cpu]}")" "$(jv "${R[$srv,cpu_s]}")" "$(jv "${R[$srv,user_s]}")" "$(jv "${R[$srv,sys_s]}")" "$(jv "${R[$srv,window]}")" "$(jv "${R[$srv,pub_cpu]}")"
    printf ' "rss_idle_kb": %s, "rss_window_start_kb": %s, "rss_kb": %s, "rss_growth_beyond_segments_kb": %s, "hwm_kb": %s, "rss_net_kb_per_stream": %s, "rss_gross_kb_per_stream": %s,' \
      "$(jv "${R[$srv,rss_idle]}")" "$(jv "${R[$srv,rss_start]}")" "$(jv "${R[$srv,rss]}")" "$(jv "${R[$srv,growth]}")" "$(jv "${R[$srv,hwm]}")" "$(jv "${R[$srv,rss_net]}")" "$(jv "${R[$srv,rss_gross]}")"
    printf ' "segment_bytes_window_start": %s, "segment_bytes": %s, "first_playlist_s": %s, "first_playlist_from_publish_s": %s, "streams_ok": %s, "segments_probed": %s},\n' \
      "$(jv "${R[$srv,kept_start]}")" "$(jv "${R[$srv,kept]}")" "$(jv "${R[$srv,first]}")" "$(jv "${R[$srv,first_rel]}")" "$(jv "${R[$srv,ok_streams]}")" "$(jv "${R[$srv,probed]}")"
  done
  printf '  "targets": {"cpu_ratio": "%s", "rss": "%s", "first_playlist": "%s"},\n' "${R[target,cpu_ratio]}" "${R[target,rss]}" "${R[target,first_playlist]}"
  printf '  "failures": ['
  sep=""
  for f in "${FAILURES[@]}"; do printf '%s"%s"' "$sep" "$(printf '%s' "$f" | sed 's/\\/\\\\/g; s/"/\\"/g' | tr -d '\000-\037')"; sep=", "; done
  printf ']\n}\n'
} >"$OUT/summary.json"
echo "summary: $OUT/summary.json"

if [ "${#FAILURES[@]}" -gt 0 ]; then
  echo
  echo "CORRECTNESS FAILURES (${#FAILURES[@]}):"
  for f in "${FAILURES[@]}"; do echo "  $f"; done
  echo "bench_live_vs_nginx: FAILED"
  exit 1
fi
echo "bench_live_vs_nginx: done"
