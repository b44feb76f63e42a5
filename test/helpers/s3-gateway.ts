// A real S3 server for the S3 backup tests: a throwaway Ceph RADOS Gateway (scripts/ceph-rgw.sh).
//
// The first test of a test process that asks for it starts one cluster (≈5 s) under a private temp
// folder on free ports; every later test of the process shares it and gets its own bucket. It is
// stopped when the process exits (by the pid files the script wrote, never by name), and a small
// watchdog stops it too if the process is killed before it can. A machine without radosgw fails
// the test with install advice: S3 tests never skip.
//
// Limits: the OSD keeps object data in RAM (memstore, CEPH_MEMSTORE_BYTES, 1 GiB here); past 95%
// full every PUT and DELETE hangs 30 s and then fails, so tests keep their data small. Deleted
// data is freed only after ~40 s (radosgw's garbage collector).

import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import type { ExecutionContext } from 'ava';
import { execa } from 'execa';
import { REPO_ROOT, requireTool } from './tools.js';

const SCRIPT = join(REPO_ROOT, 'scripts', 'ceph-rgw.sh');
const MEMSTORE_BYTES = String(1024 * 1024 * 1024);

export interface S3Gateway {
  readonly endpoint: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** Environment for an `sbm` child process: endpoint, region and keys of the test user. */
  readonly env: Record<string, string>;
  readonly client: S3Client;
}

let starting: Promise<S3Gateway> | undefined;
let bucketCounter = 0;

/** The process's gateway, started on first use; fails the test (never skips) when Ceph is missing. */
export async function s3Gateway(t: ExecutionContext): Promise<S3Gateway> {
  for (const tool of ['radosgw', 'ceph-mon', 'ceph-osd', 'radosgw-admin']) await requireTool(t, tool);
  starting ??= startGateway();
  return starting;
}

/** A new, empty bucket for one test (bucket names are unique per process and test run). */
export async function newBucket(t: ExecutionContext, gateway?: S3Gateway): Promise<string> {
  const server = gateway ?? (await s3Gateway(t));
  const name = `t${process.pid}-${++bucketCounter}-${Math.random().toString(36).slice(2, 8)}`;
  await server.client.send(new CreateBucketCommand({ Bucket: name }));
  return name;
}

async function startGateway(): Promise<S3Gateway> {
  const dir = await mkdtemp(join(tmpdir(), 'sbm-rgw-'));
  const [rgwPort, monPort] = await freePorts(2);
  const result = await execa('bash', [SCRIPT, 'start', dir], {
    reject: false,
    env: {
      RGW_PORT: String(rgwPort),
      CEPH_MON_PORT: String(monPort),
      CEPH_MEMSTORE_BYTES: MEMSTORE_BYTES,
      CEPH_RGW_NO_INSTALL: '1',
    },
  });
  stopAtExit(dir);
  if (result.exitCode !== 0) throw new Error(`ceph-rgw.sh start failed (exit ${result.exitCode}):\n${result.stderr}`);
  const vars = Object.fromEntries(
    result.stdout
      .split('\n')
      .map((line) => /^([A-Z0-9_]+)=(.*)$/.exec(line))
      .filter((match): match is RegExpExecArray => match !== null)
      .map((match) => [match[1] ?? '', match[2] ?? '']),
  );
  const endpoint = vars.S3_ENDPOINT ?? '';
  const accessKeyId = vars.AWS_ACCESS_KEY_ID ?? '';
  const secretAccessKey = vars.AWS_SECRET_ACCESS_KEY ?? '';
  const region = vars.AWS_REGION ?? 'us-east-1';
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const client = new S3Client({
    endpoint,
    region,
    forcePathStyle: true,
    credentials: { accessKeyId, secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const env = {
    AWS_ENDPOINT_URL: endpoint,
    AWS_REGION: region,
    AWS_ACCESS_KEY_ID: accessKeyId,
    AWS_SECRET_ACCESS_KEY: secretAccessKey,
    // no shared config or credentials file of the machine's user can leak into a test
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  };
  return { endpoint, region, accessKeyId, secretAccessKey, env, client };
}

/** Stops the cluster at a normal exit, and from a watchdog when the process dies without one. */
function stopAtExit(dir: string): void {
  const watchdog = spawn(
    'bash',
    ['-c', 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec bash "$2" stop "$3"', 'watchdog', String(process.pid), SCRIPT, dir],
    { detached: true, stdio: 'ignore' },
  );
  watchdog.unref();
  process.once('exit', () => {
    try {
      execFileSync('bash', [SCRIPT, 'stop', dir], { stdio: 'ignore', timeout: 60_000 });
    } catch {
      // the watchdog tries again once this process is gone
    }
  });
}

async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((server) => {
    const address = server.address();
    return typeof address === 'object' && address !== null ? address.port : 0;
  });
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}
