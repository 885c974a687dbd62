/**
 * Loaded into every test process (`npm test`: `--import ./test/helpers/exit-guard.ts`). A test file whose process
 * still has open handles 30 s after its last test (a server or socket left open, typically by a test that
 * failed before its cleanup) is made to exit, with a line saying so, instead of keeping the test runner waiting
 * forever: Node 20's runner waits for each file's process to exit (one CI run waited 90 minutes). `process.exit()`
 * keeps the exit code the runner set (1 when a test failed). Not `--test-force-exit`: on Node 24 that exits while
 * the file's report is still being written to the runner, and tests went missing from the counts.
 */
import { after } from 'node:test';

after(() => {
  setTimeout(() => {
    process.stderr.write('exit-guard: open handles kept this test file alive 30 s after its last test; exiting\n');
    process.exit();
  }, 30_000).unref();
});
