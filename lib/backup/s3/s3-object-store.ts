// ObjectStore over the AWS SDK for JavaScript v3: AWS S3 and the servers that speak its protocol
// (Ceph RADOS Gateway, MinIO, Backblaze B2, Wasabi). The only file of sbm that imports the SDK;
// the CLI loads it with a dynamic import, so other commands never pay for it.
//
// Configuration, as the AWS CLI reads it: endpoint from the caller (--endpoint), else
// AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, else AWS itself; region from AWS_REGION or
// AWS_DEFAULT_REGION, else the profile's in the shared config file, else us-east-1; credentials from the SDK's default chain (environment,
// shared config and credentials files, AWS_PROFILE, SSO, instance roles). A non-AWS endpoint gets
// path-style URLs (bucket in the path: no wildcard DNS needed). Checksums are computed and checked
// only where an operation requires them: Ceph's gateway 16.2 answers the SDK's default streamed
// aws-chunked uploads with HTTP 411.
//
// Retries: the SDK's standard mode (exponential backoff with jitter) for throttling, 5xx and
// network errors, MAX_ATTEMPTS in all; a request that hangs (a full Ceph OSD answers after 30 s)
// is cut at REQUEST_TIMEOUT_MS and retried.

import {
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { SbmError, type SbmErrorCode } from '../../errors.js';
import type { ListedObject, ObjectStore, StoredObject, WriteCondition } from './object-store.js';

/**
 * The region of the shared config file's profile (AWS_PROFILE, else default), through the SDK's
 * own chain, else us-east-1 (where the SDK alone would fail with "Region is missing").
 */
async function profileRegion(): Promise<string> {
  try {
    return await new S3Client({}).config.region();
  } catch {
    return 'us-east-1';
  }
}

const MAX_ATTEMPTS = 5;
const CONNECTION_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 120_000;
const DELETE_BATCH = 1000;

export interface S3StoreOptions {
  readonly bucket: string;
  /** Endpoint URL of a non-AWS server; defaults to AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL. */
  readonly endpoint?: string;
  /** Concurrent connections (uploads and downloads in flight). */
  readonly maxSockets?: number;
}

export function s3ObjectStore(options: S3StoreOptions): ObjectStore {
  const env = process.env;
  // The SDK warns on every start under Node 20 about its future releases; sbm pins a release that supports 20.
  env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const endpoint = options.endpoint ?? nonEmpty(env.AWS_ENDPOINT_URL_S3) ?? nonEmpty(env.AWS_ENDPOINT_URL);
  if (endpoint !== undefined && !/^https?:\/\/[^/]+/.test(endpoint)) {
    throw new SbmError('SBM_USAGE', `S3 endpoint "${endpoint}" is not an http:// or https:// URL`, { endpoint });
  }
  const client = new S3Client({
    region: nonEmpty(env.AWS_REGION) ?? nonEmpty(env.AWS_DEFAULT_REGION) ?? profileRegion,
    ...(endpoint === undefined ? {} : { endpoint, forcePathStyle: !isAwsEndpoint(endpoint) }),
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: MAX_ATTEMPTS,
    retryMode: 'standard',
    requestHandler: {
      connectionTimeout: CONNECTION_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      httpAgent: { maxSockets: options.maxSockets ?? 16, keepAlive: true },
      httpsAgent: { maxSockets: options.maxSockets ?? 16, keepAlive: true },
    },
  });
  const bucket = options.bucket;
  const where = (key: string) => `s3://${bucket}/${key}`;
  const call = async <T>(doing: string, key: string, run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (error) {
      throw s3Error(error, doing, where(key), bucket, endpoint);
    }
  };
  return {
    describe: where,
    get: (key) =>
      call('reading', key, async (): Promise<StoredObject | undefined> => {
        const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key })).catch(notFoundAsUndefined);
        if (answer === undefined) return undefined;
        return { body: await bodyBytes(answer.Body), etag: answer.ETag ?? '' };
      }),
    getRange: (key, offset, length) =>
      call('reading', key, async () => {
        const range = `bytes=${offset}-${offset + length - 1}`;
        const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: range })).catch(notFoundAsUndefined);
        return answer === undefined ? undefined : await bodyBytes(answer.Body);
      }),
    head: (key) =>
      call('reading', key, async () => {
        const answer = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).catch(notFoundAsUndefined);
        return answer === undefined ? undefined : { sizeBytes: answer.ContentLength ?? 0 };
      }),
    put: (key, body) =>
      call('writing', key, async () => {
        await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentLength: body.length }));
      }),
    putIf: (key, body, condition) => call('writing', key, () => conditionalPut(client, bucket, key, body, condition)),
    deleteMany: (keys) =>
      call('deleting', keys[0] ?? '', async () => {
        for (let start = 0; start < keys.length; start += DELETE_BATCH) {
          const batch = keys.slice(start, start + DELETE_BATCH).map((Key) => ({ Key }));
          const answer = await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: batch, Quiet: true } }));
          const failed = answer.Errors?.[0];
          if (failed !== undefined) {
            throw new SbmError('SBM_S3_FAILED', `deleting ${where(failed.Key ?? '')}: ${failed.Code}: ${failed.Message}`, {
              key: failed.Key,
            });
          }
        }
      }),
    list: (prefix) => listKeys(client, bucket, prefix, (error) => s3Error(error, 'listing', where(prefix), bucket, endpoint)),
  };
}

async function* listKeys(client: S3Client, bucket: string, prefix: string, translate: (error: unknown) => unknown) {
  let token: string | undefined;
  do {
    const page = await client
      .send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ...(token === undefined ? {} : { ContinuationToken: token }) }))
      .catch((error: unknown) => {
        throw translate(error);
      });
    for (const item of page.Contents ?? []) {
      if (item.Key !== undefined) yield { key: item.Key, sizeBytes: item.Size ?? 0 } satisfies ListedObject;
    }
    token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
}

/**
 * PUT with If-None-Match / If-Match. Ceph's gateway 16.2 compares If-Match with the entity tag
 * without its quotes, AWS with them: the unquoted form is tried first, then the quoted one. A 412
 * never writes, so trying both is safe: a write happens only when one form matched.
 */
async function conditionalPut(client: S3Client, bucket: string, key: string, body: Buffer, condition: WriteCondition) {
  const forms = 'ifMatch' in condition ? [condition.ifMatch.replaceAll('"', ''), `"${condition.ifMatch.replaceAll('"', '')}"`] : ['*'];
  for (const form of forms) {
    const header = 'ifMatch' in condition ? { IfMatch: form } : { IfNoneMatch: form };
    try {
      const answer = await client.send(
        new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentLength: body.length, ...header }),
      );
      return answer.ETag ?? '';
    } catch (error) {
      // 409 ConditionalRequestConflict: AWS's answer to two conditional writes racing.
      if (!(statusOf(error) === 412 || statusOf(error) === 409)) throw error;
    }
  }
  return undefined;
}

async function bodyBytes(body: { transformToByteArray(): Promise<Uint8Array> } | undefined): Promise<Buffer> {
  if (body === undefined) return Buffer.alloc(0);
  const bytes = await body.transformToByteArray();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function notFoundAsUndefined(error: unknown): undefined {
  const name = (error as { name?: string }).name;
  if (name === 'NoSuchKey' || (name === 'NotFound' && statusOf(error) === 404)) return undefined;
  // A HEAD of a key in a missing bucket is a bare 404 too: only GET tells the two apart (its body
  // names NoSuchBucket), so repositories are opened with a GET (s3-repository.ts).
  throw error;
}

function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

const CREDENTIAL_ERRORS = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'RequestTimeTooSkewed', 'InvalidToken', 'ExpiredToken']);
const NETWORK_ERRORS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNRESET', 'EHOSTUNREACH', 'ETIMEDOUT', 'TimeoutError']);

/** One line with a code for what the server (or the way to it) said. */
export function s3Error(error: unknown, doing: string, what: string, bucket: string, endpoint: string | undefined): SbmError {
  if (error instanceof SbmError) return error;
  const name = String((error as { name?: string }).name ?? '');
  const errno = String((error as { code?: string }).code ?? '');
  const message = error instanceof Error ? error.message : String(error);
  const status = statusOf(error);
  const server = endpoint ?? 'AWS S3';
  const fail = (code: SbmErrorCode, detail: string) =>
    new SbmError(code, detail, { bucket, endpoint: server, status, s3Code: name }, { cause: error });
  if (name === 'CredentialsProviderError' || /Could not load credentials/i.test(message)) {
    return fail(
      'SBM_S3_CREDENTIALS',
      `found no S3 credentials ${doing} ${what}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with a credentials file`,
    );
  }
  if (CREDENTIAL_ERRORS.has(name)) {
    return fail('SBM_S3_CREDENTIALS', `${server} refused the credentials ${doing} ${what} (${name}): check the access key and secret`);
  }
  if (name === 'NoSuchBucket') return fail('SBM_S3_NO_BUCKET', `bucket "${bucket}" does not exist on ${server}`);
  if (name === 'AccessDenied' || status === 403) {
    return fail('SBM_S3_DENIED', `${server} denied ${doing} ${what} (${name || 'HTTP 403'}): the credentials lack permission`);
  }
  if (NETWORK_ERRORS.has(errno) || NETWORK_ERRORS.has(name) || /ECONNREFUSED|ENOTFOUND|socket hang up/.test(message)) {
    return fail('SBM_S3_UNREACHABLE', `cannot reach ${server} ${doing} ${what}: ${message}`);
  }
  return fail(
    'SBM_S3_FAILED',
    `${server} failed ${doing} ${what} after retries: ${name || 'error'}${status ? ` (HTTP ${status})` : ''}: ${message}`,
  );
}

function isAwsEndpoint(endpoint: string): boolean {
  return /\.amazonaws\.com(\.cn)?(:\d+)?(\/|$)/.test(endpoint.replace(/^https?:\/\//, '').replace(/\/.*$/, '/'));
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
