// The part of seek-bzip (pure-JS bzip2 decoder, CommonJS, no bundled types) that sbm uses.
declare module 'seek-bzip' {
  const Bunzip: {
    /** Decodes a whole bzip2 stream; with a Buffer `output` it throws unless the output fills it exactly. */
    decode(input: Uint8Array, output?: Buffer | number, multistream?: boolean): Buffer;
  };
  export = Bunzip;
}
