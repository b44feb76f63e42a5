// The option every command that takes an s3:// address accepts, and how such a command reaches
// the repository (endpoint, and the password should the repository be encrypted).

import { type PasswordOptions, passwordSource } from './password-input.js';
import type { S3Access } from './s3-actions.js';

export const endpointOption = {
  endpoint: {
    type: 'string',
    describe: 'S3 endpoint URL for s3:// addresses (default: AWS_ENDPOINT_URL_S3, then AWS_ENDPOINT_URL, then AWS)',
  },
} as const;

export function s3Access(argv: PasswordOptions & { readonly endpoint?: string | undefined }): S3Access {
  return { ...(argv.endpoint === undefined ? {} : { endpoint: argv.endpoint }), password: passwordSource(argv) };
}
