#!/usr/bin/env bash
# Installs, idempotently, what a fresh Debian/Ubuntu machine needs to build and test MaskRcnn.Net:
# libtorch (CPU), OpenBLAS (without it libtorch falls back to reference BLAS, ~14x slower), CMake + g++ for the
# native shim, libjpeg-turbo + libpng for image I/O, python3-torchvision as the parity oracle for tests, and chromium
# for the browser test of `maskrcnn serve`'s page (driven by Playwright, which cannot download its own browser here),
# ffmpeg (with ffprobe) for video: MaskRcnn.Net.Video and `maskrcnn predict --video` pipe raw frames through it,
# and oneDNN's headers (libdnnl-dev; the library itself comes with libtorch) for the Winograd convolutions.
set -euo pipefail
pkgs=(libtorch-dev libgloo-dev libdnnl-dev libopenblas0-pthread cmake g++ make iproute2 libjpeg62-turbo-dev libpng-dev python3-torchvision chromium ffmpeg)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "setup.sh: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v dotnet >/dev/null 2>&1; then
  echo "setup.sh: the .NET 10 SDK is required (https://dot.net); install it and re-run." >&2
  exit 1
fi
# Make sure libblas.so.3 resolves to OpenBLAS, not the reference BLAS.
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
case "$blas" in
  *openblas*) ;;
  *) echo "setup.sh: warning: libblas.so.3 -> $blas (not OpenBLAS); libtorch will be slow" >&2 ;;
esac
echo "setup.sh: prerequisites present"
