// Is a source disk open for writing by its hypervisor? A sync of a disk that changes under it
// copies a torn mix of old and new blocks, so `sbm sync` refuses (SBM_LOCKED, naming who holds
// it) unless told --force-share. What each hypervisor leaves behind:
//
//   VMware      <file>.lck/ folder beside every open file, member files M<5 digits>.lck whose
//               4th word is the lock type: X exclusive (writing), S shared (reading a parent)
//   qemu        fcntl (OFD) locks on the image: byte 100+bit for each permission it holds, so
//               byte 101 (BLK_PERM_WRITE) held means a writer (Linux: /proc/locks)
//   Parallels   .lck files in the VM's .pvm folder or the disk's .hdd folder while it runs
//   any         (Linux) a process holding the file open with write access (/proc/<pid>/fd and
//               fdinfo flags): VirtualBox, which leaves no marker, is found this way
//
// Only the files of the chain being read are checked: a frozen snapshot chain under a running
// top layer is read-only for the hypervisor too (shared VMware locks, no qemu write lock).

import { readFile, readdir, readlink, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface SourceLock {
  readonly hypervisor: string;
  readonly path: string;
  readonly detail: string;
}

/** qemu's lock bytes: QEMU_LOCK_PERM_BASE (100) + the bit of BLK_PERM_WRITE (1). */
const QEMU_WRITE_PERM_BYTE = 101n;
const O_ACCMODE = 0o3;
const VMWARE_MEMBER = /^M\d{5}\.lck$/;

/** The first hold for writing found on any of `files`, or undefined. */
export async function findWriteLock(files: readonly string[]): Promise<SourceLock | undefined> {
  for (const file of files) {
    const lock = (await vmwareLock(file)) ?? (await parallelsLock(file)) ?? (await qemuLock(file));
    if (lock !== undefined) return lock;
  }
  return openForWriting(files);
}

async function vmwareLock(file: string): Promise<SourceLock | undefined> {
  const folder = `${file}.lck`;
  const members = await readdir(folder).catch(() => undefined);
  if (members === undefined) return undefined;
  for (const member of members.filter((name) => VMWARE_MEMBER.test(name))) {
    const text = await readFile(join(folder, member), 'latin1').catch(() => undefined);
    // A member that vanished was just unlocked; one that cannot be read counts as a writer.
    if (text === undefined && !(await exists(join(folder, member)))) continue;
    const type = text?.split(' ')[3];
    if (type !== 'S') return { hypervisor: 'VMware', path: file, detail: `lock ${join(folder, member)} (type ${type ?? 'unreadable'})` };
  }
  return undefined;
}

async function parallelsLock(file: string): Promise<SourceLock | undefined> {
  for (let folder = dirname(file), depth = 0; depth < 3 && folder !== dirname(folder); folder = dirname(folder), depth++) {
    if (!/\.(pvm|hdd)$/i.test(folder)) continue;
    const entries = await readdir(folder).catch(() => [] as string[]);
    const marker = entries.find((name) => name === '.lck' || name.endsWith('.lck'));
    if (marker !== undefined) return { hypervisor: 'Parallels Desktop', path: file, detail: `lock ${join(folder, marker)}` };
  }
  return undefined;
}

async function qemuLock(file: string): Promise<SourceLock | undefined> {
  const table = await readFile('/proc/locks', 'utf8').catch(() => undefined);
  if (table === undefined) return undefined; // not Linux: no way to ask for fcntl locks from Node
  const info = await stat(file, { bigint: true }).catch(() => undefined);
  if (info === undefined) return undefined;
  const device = `${hex(linuxMajor(info.dev))}:${hex(linuxMinor(info.dev))}`;
  for (const line of table.split('\n')) {
    const words = line.split(/\s+/).filter((word) => word.length > 0 && word !== '->');
    const [, kind, , , pid, where, start, end] = words;
    if (kind === undefined || where === undefined || start === undefined || end === undefined) continue;
    const parts = where.split(':');
    if (parts.length !== 3 || parts[2] !== info.ino.toString() || !sameDevice(`${parts[0]}:${parts[1]}`, device)) continue;
    const last = end === 'EOF' ? QEMU_WRITE_PERM_BYTE : BigInt(end);
    if (BigInt(start) <= QEMU_WRITE_PERM_BYTE && QEMU_WRITE_PERM_BYTE <= last) {
      const holder = pid !== undefined && pid !== '-1' ? ` by pid ${pid}` : '';
      return { hypervisor: 'qemu', path: file, detail: `${kind} lock on byte 101 (write permission)${holder}` };
    }
  }
  return undefined;
}

/** Linux only: a process (not this one) with one of `files` open for writing. */
async function openForWriting(files: readonly string[]): Promise<SourceLock | undefined> {
  const pids = await readdir('/proc').catch(() => undefined);
  if (pids === undefined) return undefined;
  const wanted = new Map<string, string>();
  for (const file of files) wanted.set(await realpath(file).catch(() => file), file);
  for (const pid of pids.filter((name) => /^\d+$/.test(name) && Number(name) !== process.pid)) {
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => undefined);
      const file = target === undefined ? undefined : wanted.get(target);
      if (file === undefined) continue;
      const fdinfo = await readFile(`/proc/${pid}/fdinfo/${fd}`, 'utf8').catch(() => '');
      const flags = /^flags:\s*([0-7]+)/m.exec(fdinfo)?.[1];
      if (flags === undefined || (Number.parseInt(flags, 8) & O_ACCMODE) === 0) continue;
      const command = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => 'unknown')).trim();
      return { hypervisor: hypervisorOf(command), path: file, detail: `open for writing by ${command} (pid ${pid})` };
    }
  }
  return undefined;
}

function hypervisorOf(command: string): string {
  if (/^(VBox|VirtualBox)/i.test(command)) return 'VirtualBox';
  if (/^qemu/i.test(command)) return 'qemu';
  if (/^vmware/i.test(command)) return 'VMware';
  if (/^prl_/i.test(command)) return 'Parallels Desktop';
  return basename(command);
}

function linuxMajor(dev: bigint): bigint {
  return ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
}

function linuxMinor(dev: bigint): bigint {
  return (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
}

function hex(value: bigint): string {
  return value.toString(16);
}

/** /proc/locks prints major:minor as %02x:%02x; compare numerically. */
function sameDevice(a: string, b: string): boolean {
  const [aMajor, aMinor] = a.split(':').map((part) => Number.parseInt(part, 16));
  const [bMajor, bMinor] = b.split(':').map((part) => Number.parseInt(part, 16));
  return aMajor === bMajor && aMinor === bMinor;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
