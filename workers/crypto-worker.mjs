// Piscina worker: one task = one batch of chunks of one block (~1 MiB). Input and output ArrayBuffers are
// transferred, not copied. The DEK copy sent with the task is zeroed after use.
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { openBatch, sealBatch } from './crypto-core.mjs';

export default function run(task) {
  try {
    const r = task.op === 'seal' ? { data: sealBatch(task), ok: task.count, failed: false } : openBatch(task);
    return move({
      get [transferableSymbol]() { return [r.data.buffer]; },
      get [valueSymbol]() { return r; },
    });
  } finally {
    task.key.fill(0);
  }
}
