#!/usr/bin/env bash
# Makes the small sample VMDKs of images/ (for the README's Quick start) from images/sample.img,
# the deterministic 32 MiB sparse raw disk of scripts/make-sample-raw.mjs:
#   images/sample.vmdk         monolithicSparse (qemu-img's default subformat)
#   images/sample-stream.vmdk  streamOptimized (the OVA/OVF transport layout)
# qemu-img writes a random CID into each descriptor; it is replaced by a fixed one so the files
# are byte-for-byte reproducible with the same qemu-img/zlib. Prints their sha256 lines.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v qemu-img >/dev/null || { echo "qemu-img is required (apt-get install qemu-utils)" >&2; exit 1; }
[ -f images/sample.img ] || node scripts/make-sample-raw.mjs images/sample.img

make_vmdk() { # subformat output fixed-cid
  rm -f "$2"
  qemu-img convert -q -f raw -O vmdk -o "subformat=$1" images/sample.img "$2"
  # Same-length edit of the embedded descriptor's CID line (not parentCID=).
  perl -pi -e "s/^CID=[0-9a-f]{8}/CID=$3/" "$2"
  local size
  size=$(stat -c %s "$2")
  if [ "$size" -gt $((2 * 1024 * 1024)) ]; then echo "$2 is $size bytes (> 2 MiB)" >&2; exit 1; fi
}

make_vmdk monolithicSparse images/sample.vmdk 5b6d0001
make_vmdk streamOptimized images/sample-stream.vmdk 5b6d0002
qemu-img check -q -f vmdk images/sample.vmdk
qemu-img check -q -f vmdk images/sample-stream.vmdk
qemu-img compare -q -f raw -F vmdk images/sample.img images/sample.vmdk
qemu-img compare -q -f raw -F vmdk images/sample.img images/sample-stream.vmdk
(cd images && sha256sum sample.vmdk sample-stream.vmdk)
