// The option every command that takes an s3:// address accepts.

export const endpointOption = {
  endpoint: {
    type: 'string',
    describe: 'S3 endpoint URL for s3:// addresses (default: AWS_ENDPOINT_URL_S3, then AWS_ENDPOINT_URL, then AWS)',
  },
} as const;
