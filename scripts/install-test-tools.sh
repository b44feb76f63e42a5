#!/usr/bin/env bash
# Installs the reference tools the interop tests drive (Debian/Ubuntu), only when missing.
set -euo pipefail
# ceph-mon, ceph-osd, radosgw and ceph-common: the throwaway Ceph RADOS Gateway (a real S3 server)
# the S3 backup tests run against (scripts/ceph-rgw.sh); curl is its readiness probe.
packages=(qemu-utils libnbd-bin nbdkit fuse3 libvmdk-utils libvhdi-utils e2fsprogs python3-vmdkstream rsync python3-cryptography)
packages+=(ceph-mon ceph-osd radosgw ceph-common curl)
tools=(qemu-img qemu-io qemu-nbd nbdinfo nbdcopy nbdfuse nbdkit vmdkinfo vhdiinfo mkfs.ext4 e2fsck fusermount3 rsync)
tools+=(ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool ceph-authtool curl)
# restic, borgbackup and fio: the peers of `npm run bench` (backups; fio's nbd engine for NBD I/O).
packages+=(restic borgbackup fio)
tools+=(restic borg fio)
# dmg2img: the independent UDIF reader the .dmg tests compare sbm's output with.
packages+=(dmg2img)
tools+=(dmg2img)
# strace: the registry test watches which code chunks a command opens.
packages+=(strace)
tools+=(strace)
missing=()
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
# VMDKstream is a Python module of Debian's own python3, not a command.
[ -f /usr/lib/python3/dist-packages/VMDKstream.py ] || missing+=(VMDKstream.py)
# test/helpers/encrcdsa.py (the independent reader of encrypted bundles) needs python3's cryptography.
python3 -c 'import cryptography' 2>/dev/null || missing+=(python3-cryptography)
if [ ${#missing[@]} -eq 0 ]; then
  echo "test tools present"
  exit 0
fi
echo "installing test tools (missing: ${missing[*]})"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}"
