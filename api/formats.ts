// `sbm/formats`: the image readers and exporters alone (openImage by content, detection, exporters).

export * from '../formats/index.js';
