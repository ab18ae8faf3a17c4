#!/usr/bin/env bash
# Renders RESULT_DIR/report.html to a PNG with headless Chromium and fails when the
# screenshot is missing or blank (a single colour).
#   scripts/report-screenshot.sh RESULT_DIR [OUT.png]     (default OUT: RESULT_DIR/report.png)
# Installs Debian's `chromium` with apt-get when no Chromium is found.
set -euo pipefail

dir=${1:?usage: scripts/report-screenshot.sh RESULT_DIR [OUT.png]}
html="$dir/report.html"
out=${2:-$dir/report.png}
[ -f "$html" ] || { echo "no report.html in $dir (run: chatload report $dir/result.json)" >&2; exit 1; }

browser=""
for b in chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
done
if [ -z "$browser" ]; then
  echo "installing chromium (apt-get)" >&2
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium >&2
  browser=chromium
fi

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
rm -f "$out"
abs_html=$(cd "$(dirname "$html")" && pwd)/$(basename "$html")
abs_out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --hide-scrollbars --user-data-dir="$profile" --window-size=1280,2400 \
  --screenshot="$abs_out" "file://$abs_html" >/dev/null 2>&1 || true

python3 - "$abs_out" <<'PY'
# Decodes the PNG with the standard library only (zlib + unfiltering) and checks that it is
# not one flat colour: the whole image is read, so the check is exact, not a size guess.
import struct, sys, zlib
path = sys.argv[1]
try:
    data = open(path, "rb").read()
except OSError:
    sys.exit(f"screenshot missing: {path}")
if data[:8] != b"\x89PNG\r\n\x1a\n":
    sys.exit(f"not a PNG: {path}")
pos, idat, width = 8, b"", 0
while pos < len(data):
    length, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + length]
    if kind == b"IHDR":
        width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
    elif kind == b"IDAT":
        idat += body
    pos += 12 + length
if depth != 8 or ctype not in (2, 6):
    sys.exit(f"unexpected PNG format (depth {depth}, colour type {ctype})")
bpp = 3 if ctype == 2 else 4
raw = zlib.decompress(idat)
stride = width * bpp
prev = bytearray(stride)
colours = set()
i = 0
for _ in range(height):
    f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
    i += 1 + stride
    for x in range(stride):
        a = line[x - bpp] if x >= bpp else 0
        b = prev[x]
        c = prev[x - bpp] if x >= bpp else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + b) & 255
        elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    colours.update(bytes(line[k:k + 3]) for k in range(0, stride, bpp * 7))
    if len(colours) >= 8:
        break  # clearly not blank; no need to decode the rest
    prev = line
if len(colours) < 8:
    sys.exit(f"screenshot looks blank: {len(colours)} distinct colour(s) in {path}")
print(f"screenshot ok: {path} ({width}x{height}, {len(data) // 1024} KiB)")
PY
