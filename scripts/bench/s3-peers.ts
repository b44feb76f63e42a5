// Backups to S3 side by side with restic's S3 backend, both against the same local Ceph RADOS
// Gateway (scripts/ceph-rgw.sh, object data in a bluestore file on disk: a memstore in RAM would
// not hold several full backups of a 4 GiB disk). As in backup-peers.ts, one disk exists twice,
// a sparse bundle for sbm and a raw file for restic; every round applies the same scattered writes
// to both (unmeasured) and each tool then backs up once.

import { CreateBucketCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { execa } from 'execa';
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeDisk, scatteredWrites } from './backup-peers.js';
import { GIB, MIB } from './data.js';
import type { Variant, Workload } from './harness.js';
import type { BenchContext } from './workloads.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const SBM = join(ROOT, 'cli', 'sbm.js');
/** The script lives in the source tree, not in dist/. */
const GATEWAY_SCRIPT = resolve(ROOT, '..', 'scripts', 'ceph-rgw.sh');

interface Gateway {
  readonly endpoint: string;
  readonly env: Record<string, string>;
  readonly client: S3Client;
  readonly stop: () => Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolvePort(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

async function startGateway(dir: string, capacityBytes: number): Promise<Gateway> {
  const started = await execa('bash', [GATEWAY_SCRIPT, 'start', dir], {
    env: {
      RGW_PORT: String(await freePort()),
      CEPH_MON_PORT: String(await freePort()),
      CEPH_OSD_STORE: 'bluestore',
      CEPH_BLUESTORE_BYTES: String(capacityBytes),
      CEPH_RGW_NO_INSTALL: '1',
    },
  });
  const vars = Object.fromEntries(
    started.stdout.split('\n').flatMap((line) => {
      const match = /^([A-Z0-9_]+)=(.*)$/.exec(line);
      return match === null ? [] : [[match[1] ?? '', match[2] ?? '']];
    }),
  );
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'; // as sbm sets it for itself
  const endpoint = vars.S3_ENDPOINT ?? '';
  const credentials = { accessKeyId: vars.AWS_ACCESS_KEY_ID ?? '', secretAccessKey: vars.AWS_SECRET_ACCESS_KEY ?? '' };
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const env = {
    AWS_ENDPOINT_URL: endpoint,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  };
  // Stopped by the last workload's teardown, or at exit should a workload fail before it.
  const stopNow = () => execFileSync('bash', [GATEWAY_SCRIPT, 'stop', dir], { stdio: 'ignore', timeout: 120_000 });
  process.once('exit', stopNow);
  const stop = async () => {
    client.destroy();
    process.off('exit', stopNow);
    await execa('bash', [GATEWAY_SCRIPT, 'stop', dir], { reject: false });
  };
  return { endpoint, env, client, stop };
}

/** Bytes of every object in the bucket. */
async function bucketBytes(client: S3Client, bucket: string): Promise<number> {
  let total = 0;
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    for (const object of page.Contents ?? []) total += object.Size ?? 0;
    token = page.NextContinuationToken;
  } while (token !== undefined);
  return total;
}

export async function s3PeerWorkloads({ dir, quick }: BenchContext): Promise<Workload[]> {
  const size = quick ? 512 * MIB : 4 * GIB;
  const disk = { bundle: join(dir, 's3.sparsebundle'), raw: join(dir, 's3.raw') };
  await makeDisk(disk.raw, size);
  await execa('node', [SBM, 'convert', disk.raw, disk.bundle, '--no-progress']);
  // Room for a full backup per tool and run, never deleted (deleted data would come back only
  // after radosgw's garbage collection), in a sparse file.
  const gateway = await startGateway(join(dir, 'rgw'), 8 * size + 8 * GIB);
  const restic = (bucket: string) => ['restic', '-r', `s3:${gateway.endpoint}/${bucket}/restic`];
  const resticEnv = { ...gateway.env, RESTIC_PASSWORD: 'bench', RESTIC_CACHE_DIR: '' };
  let buckets = 0;
  const current = { sbm: '', restic: '' };
  const newBuckets = async () => {
    buckets++;
    current.sbm = `sbm-${buckets}`;
    current.restic = `restic-${buckets}`;
    for (const bucket of Object.values(current)) await gateway.client.send(new CreateBucketCommand({ Bucket: bucket }));
    await execa(restic(current.restic)[0] ?? 'restic', [...restic(current.restic).slice(1), 'init', '--quiet'], { env: resticEnv });
  };
  const variants = (first: () => Promise<void>): Variant[] => [
    {
      label: 'sbm backup',
      before: first,
      command: () => ['node', SBM, 'backup', disk.bundle, `s3://${current.sbm}/sbm`, '--no-progress'],
      env: gateway.env,
      storedBytes: () => bucketBytes(gateway.client, current.sbm),
    },
    {
      label: 'restic backup',
      command: () => [...restic(current.restic), 'backup', '--quiet', disk.raw],
      env: resticEnv,
      storedBytes: () => bucketBytes(gateway.client, current.restic),
    },
  ];
  const description = `${size / GIB} GiB disk (half random data, a quarter written zeros, a quarter holes)`;
  const notes =
    'Both to the same local Ceph RADOS Gateway (bluestore on disk), each tool in its own bucket. sbm backs up the sparse bundle ' +
    '(tracker query; changed bands read in 1 MiB chunks, uploaded when the repository lacks them); restic (its S3 backend, ' +
    'default settings: encryption and compression on) backs up the same disk as a raw file, which it reads whole because it ' +
    'changed. "MiB added per run" is the growth of each bucket (sum of object sizes): what the run uploaded and the bucket stores.';
  const full: Workload = {
    id: 'backup-s3-full',
    title: `Full backup to S3 of a ${description} into an empty bucket`,
    notes: `Every run starts from new, empty buckets (restic init, unmeasured). ${notes}`,
    subject: 'sbm backup',
    variants: variants(newBuckets),
  };
  const incremental = (writes: number, label: string, last: boolean): Workload => {
    let round = 0;
    return {
      id: `backup-s3-incremental-${label.replace(/[^\w]+/g, '-')}`,
      title: `Incremental backup to S3 after ${label} of a ${description}`,
      notes: `Each round writes ${writes} scattered 4 KiB blocks (unmeasured), then each tool backs up once. ${notes}`,
      subject: 'sbm backup',
      variants: variants(async () => {
        round++;
        await scatteredWrites(disk, size, writes, round + 1000);
      }),
      ...(last ? { teardown: gateway.stop } : {}),
    };
  };
  // The full workload leaves one backup in the newest buckets: the base the incremental rounds build on.
  return [
    full,
    incremental(50, '50 x 4 KiB writes', false),
    incremental(Math.round(size / 100 / 4096), '1% of the disk in 4 KiB writes', true),
  ];
}
