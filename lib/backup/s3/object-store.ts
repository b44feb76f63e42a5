// The few object-storage calls an S3 backup repository needs, so the repository logic (layout,
// lease, backup, verify, thin) is written once against this contract and the AWS SDK stays in
// one file (s3-object-store.ts). Every failure is an SbmError (credentials, missing bucket, denied,
// unreachable, failed: see s3Error).

export interface StoredObject {
  readonly body: Buffer;
  /** The server's entity tag, quotes included, for a later compare-and-swap. */
  readonly etag: string;
}

export interface ListedObject {
  readonly key: string;
  readonly sizeBytes: number;
}

/** A condition on a write: create only (`ifNoneMatch`), or replace only the version read (`ifMatch`). */
export type WriteCondition = { readonly ifNoneMatch: true } | { readonly ifMatch: string };

export interface ObjectStore {
  /** `s3://bucket/` style name of a key, for messages. */
  describe(key: string): string;
  /** The object, or undefined when it does not exist. */
  get(key: string): Promise<StoredObject | undefined>;
  /** Bytes [offset, offset+length) of an object, or undefined when it does not exist. */
  getRange(key: string, offset: number, length: number): Promise<Buffer | undefined>;
  /** Size of the object, or undefined when it does not exist. */
  head(key: string): Promise<{ readonly sizeBytes: number } | undefined>;
  put(key: string, body: Buffer): Promise<void>;
  /** Writes only when the condition holds; undefined when it did not (HTTP 412), else the new entity tag. */
  putIf(key: string, body: Buffer, condition: WriteCondition): Promise<string | undefined>;
  /** Deletes the keys (missing ones are fine), in batches. */
  deleteMany(keys: readonly string[]): Promise<void>;
  /** Every object whose key starts with `prefix`, in key order. */
  list(prefix: string): AsyncIterable<ListedObject>;
}
