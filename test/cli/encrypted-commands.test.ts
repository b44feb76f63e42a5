// Encrypted bundles from the command line: create and convert with --encryption, the password from
// --stdinpass or a terminal prompt (no echo), SBM_ENCRYPTED without one and SBM_BAD_PASSWORD with
// a wrong one (nothing written), hdiutil's token layout checked by the independent Python reader,
// and the sbm features on top: NBD writes (qemu-io), change tracking, snapshots, backups that hold
// only ciphertext (searched for known plaintext), and restores that stay encrypted.

import test, { type ExecutionContext } from 'ava';
import { execa } from 'execa';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encrcdsa } from '../helpers/encrypted-fixtures.js';
import { SBM_BIN, requireTool, runSbm, tempDir } from '../helpers/tools.js';

const MiB = 1024 * 1024;
const PASSWORD = 'correct horse battery';
const MARKER = Buffer.from('SBM-PLAINTEXT-MARKER-7f3a9c-');

/** Every regular file under `dir`, with its bytes. */
async function filesUnder(dir: string): Promise<Array<{ path: string; bytes: Buffer }>> {
  const out: Array<{ path: string; bytes: Buffer }> = [];
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) out.push({ path: join(entry.parentPath, entry.name), bytes: await readFile(join(entry.parentPath, entry.name)) });
  }
  return out;
}

/** Like `grep -r`: the files under `dir` that contain `needle`. */
async function grep(dir: string, needle: Buffer): Promise<string[]> {
  return (await filesUnder(dir)).filter((file) => file.bytes.includes(needle)).map((file) => file.path);
}

async function listing(dir: string): Promise<string[]> {
  return Promise.all((await filesUnder(dir)).map(async (file) => `${file.path} ${(await stat(file.path)).size}`)).then((l) => l.sort());
}

test('create --encryption: password from --stdinpass only; no password, a wrong one, and echo-style "pw\\n" are refused', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'vm.sparsebundle');
  const noPassword = await runSbm(['create', path, '--size', '16M', '--encryption', 'AES-256']);
  t.is(noPassword.exitCode, 2);
  t.regex(noPassword.stderr, /^sbm: SBM_USAGE: --encryption needs a password: pipe it with --stdinpass/);
  t.deepEqual(await readdir(dir), [], 'nothing created');
  const created = await runSbm(['create', path, '--size', '16M', '--band-size', '1M', '--encryption', 'AES-256', '--stdinpass', '--json'], {
    input: PASSWORD,
  });
  t.is(created.exitCode, 0, created.stderr);
  t.is(JSON.parse(created.stdout).encryption, 'AES-256');
  // hdiutil's token layout, read by the independent reader; the password is stored nowhere.
  const facts = JSON.parse((await encrcdsa(['check-token', path], '')).stdout);
  t.like(facts, { keyBits: 256, chunk: 512, records: 1, tokenBytes: 0x1de00, dataStart: 0x1de00 });
  const token = await readFile(join(path, 'token'));
  t.deepEqual([token.readUInt32BE(0x4c), Number(token.readBigUInt64BE(0x50)), Number(token.readBigUInt64BE(0x58))], [1, 0x60, 0x268]);
  t.true(token.subarray(0x108).equals(Buffer.alloc(0x1de00 - 0x108)), 'zeros after the AES-256 key blob, as hdiutil');
  t.deepEqual(await grep(dir, Buffer.from(PASSWORD)), []);

  const before = await listing(dir);
  const locked = await runSbm(['info', path]);
  t.is(locked.exitCode, 4);
  t.regex(locked.stderr, /^sbm: SBM_ENCRYPTED: .*vm\.sparsebundle is an encrypted bundle \(encrcdsa\); give its password with --stdinpass/);
  for (const wrong of ['wrong', `${PASSWORD}\n`]) {
    const refused = await runSbm(['resize', path, '--size', '32M', '--stdinpass'], { input: wrong });
    t.is(refused.exitCode, 1);
    t.regex(refused.stderr, /^sbm: SBM_BAD_PASSWORD: .*wrong password/);
    t.is(refused.stderr.split('\n').length, 2, 'one line');
  }
  t.deepEqual(await listing(dir), before, 'a wrong password writes nothing');
  const info = await runSbm(['info', path, '--stdinpass', '--json'], { input: PASSWORD });
  t.is(info.exitCode, 0, info.stderr);
  t.like(JSON.parse(info.stdout), { encryption: 'AES-256', sizeBytes: 16 * MiB });
});

/** Starts `sbm mount` with the password on stdin; resolves with its NBD URI once it serves. */
async function mount(t: ExecutionContext, bundle: string, socket: string) {
  const child = execa('node', [SBM_BIN, 'mount', bundle, '--socket', socket, '--stdinpass'], { input: PASSWORD, reject: false });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sbm mount not ready: ${output}`)), 30_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('nbd+unix')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void child.then((result) => reject(new Error(`sbm mount exited ${result.exitCode}: ${String(result.stderr)}`)));
  });
  return { child, uri: (/nbd\+unix:\S+/.exec(output) ?? [''])[0] };
}

test('convert, NBD writes, tracking, snapshot, backup, restore keep the bundle encrypted; no plaintext lands on disk', async (t) => {
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  const raw = Buffer.alloc(8 * MiB);
  for (let at = MiB; at < MiB + 64 * 1024; at += MARKER.length) MARKER.copy(raw, at);
  await writeFile(join(dir, 'disk.raw'), raw);
  const bundle = join(dir, 'vm.sparsebundle');
  const sbm = (args: string[]) => runSbm([...args, '--stdinpass'], { input: PASSWORD });
  const converted = await sbm(['convert', join(dir, 'disk.raw'), bundle, '--band-size', '1M', '--encryption', 'AES-128', '--no-progress']);
  t.is(converted.exitCode, 0, converted.stderr);
  t.deepEqual(await grep(bundle, MARKER), [], 'the bundle holds no plaintext');
  const python = await encrcdsa(['decrypt', bundle, join(dir, 'py.raw')], PASSWORD);
  t.is(python.exitCode, 0, python.stderr);
  t.true((await readFile(join(dir, 'py.raw'))).equals(raw), 'the independent reader decrypts what sbm wrote');

  const token = (await sbm(['token', bundle])).stdout.trim();
  t.regex(token, /^sbm1:/);
  // Writes over NBD, unaligned, across a band edge: ciphertext on disk, plaintext to clients.
  const served = await mount(t, bundle, join(dir, 'nbd.sock'));
  const written = await execa('qemu-io', ['-f', 'raw', '-c', 'write -P 0x41 5242780 3000', served.uri], { reject: false });
  t.is(written.exitCode, 0, written.stderr);
  const readBack = await execa('qemu-io', ['-f', 'raw', '-c', 'read -P 0x41 5242780 3000', served.uri], { reject: false });
  t.notRegex(readBack.stdout, /Pattern verification failed/);
  const changed = await runSbm(['changed-bands', bundle, '--since', token, '--json']);
  t.is(changed.exitCode, 0, changed.stderr);
  t.deepEqual(
    JSON.parse(changed.stdout).bands.map((band: { bandIndex: number }) => band.bandIndex),
    [4, 5],
  );
  served.child.kill('SIGTERM');
  await served.child;
  raw.fill(0x41, 5242780, 5242780 + 3000);
  const runOfA = Buffer.alloc(32, 0x41);
  t.deepEqual(await grep(bundle, runOfA), [], 'NBD writes landed encrypted');

  t.is((await sbm(['snapshot', 'create', bundle, 'before'])).exitCode, 0);
  const snapshot = join(bundle, '.sbm', 'snapshots', 'before.sparsebundle');
  t.true((await readFile(join(snapshot, 'token'))).equals(await readFile(join(bundle, 'token'))), 'the snapshot keeps the token');
  const snapshotInfo = await sbm(['info', snapshot, '--json']);
  t.is(JSON.parse(snapshotInfo.stdout).encryption, 'AES-128', snapshotInfo.stderr);

  const dest = join(dir, 'backups');
  const backup = await sbm(['backup', bundle, dest, '--json']);
  t.is(backup.exitCode, 0, backup.stderr);
  const backupPath = JSON.parse(backup.stdout).path as string;
  t.deepEqual(await grep(dest, MARKER), [], 'a backup never holds plaintext');
  t.deepEqual(await grep(dest, runOfA), []);
  const fromBackup = await encrcdsa(['decrypt', backupPath, join(dir, 'backup.raw')], PASSWORD);
  t.is(fromBackup.exitCode, 0, fromBackup.stderr);
  t.true((await readFile(join(dir, 'backup.raw'))).equals(raw), 'the backup is a complete encrypted bundle');

  const restored = join(dir, 'restored.sparsebundle');
  const restore = await sbm(['restore', backupPath, restored]);
  t.is(restore.exitCode, 0, restore.stderr);
  t.deepEqual(await grep(restored, MARKER), [], 'a restore stays encrypted');
  const fromRestore = await encrcdsa(['decrypt', restored, join(dir, 'restored.raw')], PASSWORD);
  t.is(fromRestore.exitCode, 0, fromRestore.stderr);
  t.true((await readFile(join(dir, 'restored.raw'))).equals(raw));
  const exported = await sbm(['export', bundle, join(dir, 'out.raw'), '--format', 'raw']);
  t.is(exported.exitCode, 0, exported.stderr);
  t.true((await readFile(join(dir, 'out.raw'))).equals(raw));
});

/** Runs sbm in a pseudo-terminal (Python's pty), typing each answer after the prompt before it. */
async function inTerminal(args: string[], answers: string[]) {
  const script = `
import os, pty, sys
args, answers = sys.argv[1:-${answers.length}], sys.argv[-${answers.length}:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp("node", ["node"] + args)
out = b""
def read():
    global out
    try:
        data = os.read(fd, 4096)
    except OSError:
        return False
    out += data
    return len(data) > 0
for answer in answers:
    seen = out.count(b"nter ")
    while out.count(b"nter ") <= seen and read():
        pass
    os.write(fd, answer.encode() + b"\\r")
while read():
    pass
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(out)
sys.exit(os.waitstatus_to_exitcode(status))
`;
  return execa('python3', ['-c', script, SBM_BIN, ...args, ...answers], { reject: false, env: { NO_COLOR: '1' } });
}

test('at a terminal: create asks twice, info asks once, and nothing typed is echoed', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'tty.sparsebundle');
  const mismatch = await inTerminal(['create', path, '--size', '8M', '--encryption', 'AES-128'], ['one pass', 'other pass']);
  t.is(mismatch.exitCode, 2);
  t.regex(mismatch.stdout, /SBM_USAGE: the two passwords differ/);
  const created = await inTerminal(['create', path, '--size', '8M', '--encryption', 'AES-128'], [PASSWORD, PASSWORD]);
  t.is(created.exitCode, 0, created.stdout);
  t.regex(created.stdout, /encrypted with AES-128/);
  const info = await inTerminal(['info', path], [PASSWORD]);
  t.is(info.exitCode, 0, info.stdout);
  t.regex(info.stdout, /Enter password to access the encrypted bundle: /);
  t.regex(info.stdout, /encryption:\s+AES-128/);
  for (const output of [created.stdout, info.stdout]) t.false(output.includes('correct horse'), 'the password is never echoed');
  const wrong = await inTerminal(['info', path], ['nope']);
  t.is(wrong.exitCode, 1);
  t.regex(wrong.stdout, /SBM_BAD_PASSWORD/);
});

test('sync into an encrypted bundle keeps no plaintext hashes; check passes; convert --force replaces an encrypted bundle', async (t) => {
  const dir = await tempDir(t);
  const raw = Buffer.alloc(4 * MiB);
  for (let at = 2 * MiB; at < 2 * MiB + 8192; at += MARKER.length) MARKER.copy(raw, at);
  await writeFile(join(dir, 'disk.raw'), raw);
  const bundle = join(dir, 'vm.sparsebundle');
  const sbm = (args: string[]) => runSbm([...args, '--stdinpass'], { input: PASSWORD });
  t.is((await sbm(['create', bundle, '--size', '4M', '--band-size', '1M', '--encryption', 'AES-256'])).exitCode, 0);
  const synced = await sbm(['sync', join(dir, 'disk.raw'), bundle, '--no-progress', '--json']);
  t.is(synced.exitCode, 0, synced.stderr);
  t.deepEqual(await grep(bundle, MARKER), []);
  const record = JSON.parse(await readFile(join(bundle, '.sbm', 'sync.json'), 'utf8')) as { hashes: Array<string | null> };
  t.true(record.hashes.length > 0 && record.hashes.every((hash) => hash === null), 'no hash of plaintext is kept');
  const python = await encrcdsa(['decrypt', bundle, join(dir, 'py.raw')], PASSWORD);
  t.is(python.exitCode, 0, python.stderr);
  t.true((await readFile(join(dir, 'py.raw'))).equals(raw));
  const check = await runSbm(['check', bundle]);
  t.is(check.exitCode, 0, check.stdout + check.stderr);
  const again = await sbm(['sync', join(dir, 'disk.raw'), bundle, '--no-progress', '--json']);
  t.is(again.exitCode, 0, again.stderr);
  const replaced = await sbm(['convert', join(dir, 'disk.raw'), bundle, '--force', '--band-size', '1M', '--encryption', 'AES-128']);
  t.is(replaced.exitCode, 0, replaced.stderr);
  const info = await sbm(['info', bundle, '--json']);
  t.is(JSON.parse(info.stdout).encryption, 'AES-128');
  const token = await readFile(join(bundle, 'token'));
  token.writeUInt32BE(3, 8);
  await writeFile(join(bundle, 'token'), token);
  const damaged = await runSbm(['check', bundle]);
  t.is(damaged.exitCode, 5);
  t.regex(damaged.stdout + damaged.stderr, /SBM_CORRUPT.*encrypted-bundle token has version 3/);
});
