#!/usr/bin/env bash
# Install the Debian programs that some tests measure with, when they are missing.
# Without root or apt-get, say so and carry on: those tests skip and name what is missing.
set -u
need=()
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)
# flac/metaflac (the reference FLAC programs; GPL, so a test tool only, never a dependency): a
# signed FLAC, whose C2PA manifest rides in an ID3v2 tag ahead of fLaC, must still decode.
command -v metaflac >/dev/null 2>&1 || need+=(flac)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-tools: cannot install ${need[*]} (needs root and apt-get); tests that use them will skip" >&2
  exit 0
fi
echo "ensure-tools: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
  || echo "ensure-tools: apt-get could not install ${need[*]}; tests that use them will skip" >&2
exit 0
