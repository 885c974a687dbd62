import type { ConfigIssue } from '../model/types.ts';
import type { ConfigResult } from '../model/config.ts';
import type { ConfigFileLimits } from '../model/config-file.ts';
import type { AccessLogFormat } from './access-log.ts';

/** The config functions of src/cli.ts (passed in, so neither serve.ts nor workers.ts imports the entry point). */
export interface ConfigFns {
  load(file: string, limits?: ConfigFileLimits): ConfigResult;
  /** `load` in a worker thread (src/net/node/config-file.ts); `raw: false` leaves the parsed object behind. */
  loadOffThread(file: string, opts?: { limits?: ConfigFileLimits | undefined; raw?: boolean }): Promise<ConfigResult>;
  formatIssues(file: string, issues: readonly ConfigIssue[]): string;
}

export interface ServeOptions {
  events?: string;
  logLevel?: string;
  trace?: string;
  watch?: boolean;
  accessLog?: AccessLogFormat;
  pidFile?: string;
  check?: boolean;
  /** --max-config-bytes / --max-config-nodes (default: CONFIG_FILE_LIMITS). */
  limits?: ConfigFileLimits;
  /** --workers: worker processes (default 1: this process serves alone). */
  workers?: number;
}
