/** PyTorch checkpoints on disk (Node only; the format itself is in torch-checkpoint.ts). */
import { closeSync, fstatSync, readSync } from 'node:fs';
import { constants } from 'node:buffer';
import { InputError } from '../errors.js';
import { openForReading } from './safetensors-fs.js';
import { parseTorchCheckpoint, type TorchCheckpoint } from './torch-checkpoint.js';

// Node's single read() is capped near 2 GiB; read larger files in pieces.
const READ_CHUNK = 1 << 30;

/** Reads a whole torch.save file (the zip's entries are used as views of it, so it is held in memory). */
export function readTorchCheckpointFile(path: string): TorchCheckpoint {
  const fd = openForReading(path);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new InputError(`${path}: is not a regular file`);
    if (st.size > constants.MAX_LENGTH) throw new InputError(`${path}: ${st.size} bytes is more than one buffer holds here (${constants.MAX_LENGTH}); .pt files are read whole`);
    const bytes = new Uint8Array(st.size);
    for (let done = 0; done < bytes.length; ) {
      const got = readSync(fd, bytes, done, Math.min(READ_CHUNK, bytes.length - done), done);
      if (got === 0) throw new InputError(`${path}: file ended after ${done} bytes while reading (was it changed meanwhile?)`);
      done += got;
    }
    return parseTorchCheckpoint(bytes, path);
  } finally {
    closeSync(fd);
  }
}
