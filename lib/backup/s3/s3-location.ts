// `s3://BUCKET/PREFIX` addresses of S3 backup repositories, and of sets and backups inside them
// (`s3://BUCKET/PREFIX/<set>/<backup>`). Cheap to import: the CLI asks isS3Url before it decides
// to load the AWS SDK.

import { SbmError } from '../../errors.js';

export interface S3Location {
  readonly bucket: string;
  /** Key prefix without leading or trailing slash; '' for the bucket's root. */
  readonly prefix: string;
}

export function isS3Url(text: string): boolean {
  return text.startsWith('s3://');
}

export function parseS3Url(text: string): S3Location {
  const match = /^s3:\/\/([^/]+)\/?(.*)$/.exec(text);
  const bucket = match?.[1] ?? '';
  if (!/^[a-z0-9][a-z0-9.\-_]{1,254}$/i.test(bucket)) {
    throw new SbmError('SBM_USAGE', `"${text}" is not an s3://BUCKET/PREFIX address`, { url: text });
  }
  const prefix = (match?.[2] ?? '').split('/').filter((part) => part !== '');
  if (prefix.some((part) => part === '.' || part === '..')) {
    throw new SbmError('SBM_USAGE', `"${text}": . and .. are not allowed in an S3 prefix`, { url: text });
  }
  return { bucket, prefix: prefix.join('/') };
}

export function formatS3Url(location: S3Location, ...parts: string[]): string {
  return `s3://${[location.bucket, location.prefix, ...parts].filter((part) => part !== '').join('/')}`;
}

/** The prefix one level up and the last part, or undefined at the bucket's root. */
export function splitLast(prefix: string): { readonly parent: string; readonly last: string } | undefined {
  if (prefix === '') return undefined;
  const cut = prefix.lastIndexOf('/');
  return { parent: cut < 0 ? '' : prefix.slice(0, cut), last: prefix.slice(cut + 1) };
}
