#!/usr/bin/env bash
# THE test command: installs what is missing, then runs every check, stopping at the first failure.
#
#   ./scripts/test.sh
#
# Steps: system tools (apt, only what is missing) -> a current FFmpeg (pip imageio-ffmpeg, for
# CENC cbcs decryption) -> moto's S3 server (pip moto[server], for the object-store tests) ->
# threefive (pip, the independent SCTE-35 decoder of the ad-marker tests) -> npm ci in tests/browser (only when
# node_modules is missing or package-lock.json changed) -> cargo fmt --check -> cargo clippy
# -D warnings (with object-store) -> cargo doc (default features) -> cargo test --release (with
# object-store: its tests run against moto) -> cargo check of the fuzz crate.
# Idempotent; with everything installed and built it only runs the cargo steps.
# Environment: STROM_SKIP_BROWSER=1 skips the browser install and the browser playback tests (hls.js, dash.js, Shaka)
# (they print SKIP). CI=true turns cargo colours off.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

FMT_COLOR=()
if [ "${CI:-}" = "true" ]; then
  export CARGO_TERM_COLOR=never
  FMT_COLOR=(--color never)        # rustfmt colours its diff on its own
fi
export DEBIAN_FRONTEND=noninteractive
SKIP_BROWSER="${STROM_SKIP_BROWSER:-0}"

T_START=$(date +%s.%N)
CURRENT=""
STEPS_DONE=0
log() { printf '[test.sh] %s\n' "$*"; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
on_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    log "FAILED at step '${CURRENT:-setup}' (exit $rc) after $(elapsed "$T_START") s"
  fi
}
trap on_exit EXIT

# step NAME COMMAND...: runs one step, prints its duration; `set -e` stops at the first failure.
step() {
  local name="$1"; shift
  CURRENT="$name"
  log "---- $name: $*"
  local t0; t0=$(date +%s.%N)
  "$@"
  log "---- $name: ok in $(elapsed "$t0") s"
  STEPS_DONE=$((STEPS_DONE + 1))
}

# ---------------------------------------------------------------- system tools (apt)
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    log "need root (or sudo) to run: $*"
    return 1
  fi
}

install_system_tools() {
  local need=()
  command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
  [ -x /usr/bin/time ] || need+=(time)                      # GNU time: CPU + peak RSS in the bench
  if [ "$SKIP_BROWSER" != "1" ]; then
    [ -x /usr/bin/chromium ] || need+=(chromium)
    command -v node >/dev/null 2>&1 || need+=(nodejs)
    command -v npm >/dev/null 2>&1 || need+=(npm)
  fi
  # libfuzzer-sys' build script compiles libFuzzer (C++) even for `cargo check`
  if [ -f fuzz/Cargo.toml ] && ! command -v c++ >/dev/null 2>&1; then
    need+=(g++)
  fi
  if [ ${#need[@]} -eq 0 ]; then
    log "system tools present: $(ffmpeg -version | head -1 | cut -d' ' -f1-3)"
    return 0
  fi
  log "apt-get install ${need[*]}"
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${need[@]}"
}

# pip_install SPEC: pip (installed with apt when missing) installs SPEC for python3. Debian's
# system Python refuses pip installs unless told (PEP 668); a venv/pyenv Python does not.
pip_install() {
  if ! python3 -m pip --version >/dev/null 2>&1; then
    log "apt-get install python3-pip"
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends python3-pip
  fi
  log "pip install $1"
  python3 -m pip install --quiet "$1" \
    || python3 -m pip install --quiet --break-system-packages "$1"
}

# ---------------------------------------------------------------- current FFmpeg (PyPI)
# Debian's FFmpeg 5.1 cannot decrypt CENC cbcs; the CENC tests decrypt with the static
# FFmpeg that the imageio-ffmpeg wheel ships (tests/common: ffmpeg_current()).
IMAGEIO_FFMPEG_VERSION="0.8.1"
install_current_ffmpeg() {
  local probe='import imageio_ffmpeg, sys; sys.exit(0 if imageio_ffmpeg.__version__ == sys.argv[1] else 1)'
  if python3 -c "$probe" "$IMAGEIO_FFMPEG_VERSION" >/dev/null 2>&1; then
    log "current ffmpeg present: $("$(python3 -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())')" -version | head -1 | cut -d' ' -f1-3)"
    return 0
  fi
  pip_install "imageio-ffmpeg==$IMAGEIO_FFMPEG_VERSION"
  python3 -c "$probe" "$IMAGEIO_FFMPEG_VERSION"
}

# ---------------------------------------------------------------- SCTE-35 decoder (PyPI)
# The ad-marker tests decode every SCTE-35 section strom writes (HLS DATERANGE, MPD events,
# emsg boxes, TS packets) with an independent decoder, threefive (tests/common/scte35.rs).
THREEFIVE_VERSION="3.1.5"
install_threefive() {
  local probe='import sys, threefive; sys.exit(0 if threefive.version == sys.argv[1] else 1)'
  if python3 -c "$probe" "$THREEFIVE_VERSION" >/dev/null 2>&1; then
    log "threefive present: $THREEFIVE_VERSION"
    return 0
  fi
  pip_install "threefive==$THREEFIVE_VERSION"
  python3 -c "$probe" "$THREEFIVE_VERSION"
}

# ---------------------------------------------------------------- S3-compatible server (PyPI)
# tests/object_store.rs runs ObjectSegmentStore (feature object-store) against moto's S3 server
# on 127.0.0.1; keep the pin in step with MOTO in that file.
MOTO_VERSION="5.2.1"
install_moto() {
  local probe='import sys, moto, moto.server, flask, flask_cors; sys.exit(0 if moto.__version__ == sys.argv[1] else 1)'
  if python3 -c "$probe" "$MOTO_VERSION" >/dev/null 2>&1; then
    log "moto server present: $MOTO_VERSION"
    return 0
  fi
  pip_install "moto[server]==$MOTO_VERSION"
  python3 -c "$probe" "$MOTO_VERSION"
}

rust_components() {
  local comp
  for comp in rustfmt clippy; do
    local probe=fmt
    [ "$comp" = clippy ] && probe=clippy
    if ! cargo "$probe" --version >/dev/null 2>&1; then
      command -v rustup >/dev/null 2>&1 || { log "cargo $probe is missing and rustup is not available"; return 1; }
      rustup component add "$comp"
    fi
  done
}

# ---------------------------------------------------------------- browser test dependencies (npm)
BROWSER_DIR="$ROOT/tests/browser"
LOCK_STAMP="$BROWSER_DIR/node_modules/.strom-package-lock.sha256"

install_browser_deps() {
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -lt 20 ]; then
    log "playwright-core 1.65.1 needs Node.js >= 20, found $(node --version) (Debian 12 ships 18)."
    log "Install Node.js 20+ (e.g. from NodeSource), or run with STROM_SKIP_BROWSER=1 to skip browser playback."
    return 1
  fi
  local want have=""
  want=$(sha256sum "$BROWSER_DIR/package-lock.json" | cut -d' ' -f1)
  [ -f "$LOCK_STAMP" ] && have=$(cat "$LOCK_STAMP")
  local pkg missing=""
  for pkg in playwright-core hls.js dashjs shaka-player; do
    [ -d "$BROWSER_DIR/node_modules/$pkg" ] || missing="$missing $pkg"
  done
  if [ -z "$missing" ] && [ "$want" = "$have" ]; then
    log "tests/browser/node_modules up to date (playwright-core, hls.js, dashjs, shaka-player)"
    return 0
  fi
  # pinned by package-lock.json; never `npx playwright install`: the browser is /usr/bin/chromium
  (cd "$BROWSER_DIR" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$LOCK_STAMP"
}

fuzz_check() {
  if [ -f fuzz/Cargo.toml ]; then
    cargo check --manifest-path fuzz/Cargo.toml
  else
    log "fuzz/Cargo.toml absent: skipping the fuzz crate check"
  fi
}

step "system tools" install_system_tools
step "current ffmpeg (pip)" install_current_ffmpeg
step "moto S3 server (pip)" install_moto
step "threefive SCTE-35 decoder (pip)" install_threefive
step "rust components" rust_components
if [ "$SKIP_BROWSER" = "1" ]; then
  log "STROM_SKIP_BROWSER=1: not installing browser test dependencies; playback tests will print SKIP"
else
  step "npm ci (tests/browser)" install_browser_deps
fi
step "cargo fmt" cargo fmt --all -- --check "${FMT_COLOR[@]}"
# One clippy and one test build, both with the object-store feature on (it only adds code), so
# the crate is compiled once per profile; `cargo doc` builds the default features on their own.
step "cargo clippy" cargo clippy --all-targets --features object-store -- -D warnings
step "cargo doc" env RUSTDOCFLAGS="-D warnings" cargo doc --no-deps
step "cargo test --release" cargo test --release --features object-store
step "fuzz crate check" fuzz_check

CURRENT=""
log "ALL OK: $STEPS_DONE steps passed in $(elapsed "$T_START") s"
