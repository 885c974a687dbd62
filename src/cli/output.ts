/**
 * Leaving the process without losing output. On a pipe, Node writes stdout and stderr asynchronously once the
 * pipe's buffer (64 KiB on Linux) is full; `process.exit` right after a large write throws the rest away
 * (`refract validate big.yaml | less` was cut at 64 KiB). So commands return their exit code, and the process
 * leaves only after both streams have flushed everything written so far.
 */

/** Resolves once everything written to `stream` so far has been handed to the OS (or the stream has failed). */
export function flushed(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.destroyed || stream.writableEnded) {
      resolve();
      return;
    }
    // Write callbacks run in order, so the callback of an empty write runs after every earlier write is done.
    stream.write('', () => resolve());
  });
}

/**
 * Sets `process.exitCode`, waits for stdout and stderr to flush, then exits (so a stray handle such as a file
 * watcher cannot keep a finished command alive).
 */
export async function exitAfterFlush(code: number): Promise<void> {
  process.exitCode = code;
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  process.exit(code);
}

/**
 * A reader that goes away early (`refract validate big.yaml | head`) is not an error of ours: stop writing and
 * leave quietly instead of printing an EPIPE stack trace.
 */
export function quietOnClosedPipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw e;
    });
  }
}
