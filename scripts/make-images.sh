#!/usr/bin/env bash
# Regenerates the sample disks in images/ and their manifest images/SHA256SUMS.
# The raw sample is byte-for-byte deterministic; VMDK samples embed a random CID, so
# regenerating them changes their hashes (the manifest then records the new ones).
set -euo pipefail
cd "$(dirname "$0")/.."
node scripts/make-sample-raw.mjs images/sample.img
if [ -f scripts/make-vmdk-samples.sh ]; then bash scripts/make-vmdk-samples.sh; fi
cd images
find . -maxdepth 1 -type f ! -name SHA256SUMS ! -name README.md -printf '%P\n' | LC_ALL=C sort | xargs sha256sum > SHA256SUMS
cat SHA256SUMS
