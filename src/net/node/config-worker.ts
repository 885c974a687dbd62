/**
 * The worker thread of `loadConfigFileOffThread` (config-file.ts): reads, checks and parses one config file and
 * posts the ConfigResult back (without `raw` unless asked), then ends.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { readConfigFile, type WorkerInput, type WorkerReply } from './config-file.ts';

const input = workerData as WorkerInput;
const r = readConfigFile(input.file, input.limits);
const reply: WorkerReply = { result: r.ok && !input.raw ? { ...r, raw: undefined } : r };
parentPort?.postMessage(reply);
