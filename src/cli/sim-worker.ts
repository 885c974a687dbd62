/**
 * The worker thread of `refract sim` (started by src/cli/sim-thread.ts): runs the command with the launcher's
 * arguments and terminal flag, sends its output and exit code back as messages.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { simCommand } from '../scenario/cli.ts';
import type { SimWorkerData, SimWorkerMessage } from './sim-thread.ts';

const port = parentPort;
if (port === null) throw new Error('src/cli/sim-worker.ts runs in a worker thread (src/cli/sim-thread.ts starts it)');
const { argv, tty } = workerData as SimWorkerData;
const send = (m: SimWorkerMessage): void => port.postMessage(m);
const code = await simCommand([...argv], {
  out: (text) => send({ out: text }),
  err: (text) => send({ err: text }),
  tty,
  now: () => performance.now(),
});
send({ exit: code });
