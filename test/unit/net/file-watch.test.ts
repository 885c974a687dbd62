/**
 * watchFileChanges: the three ways operators replace a file (in place, renamed over, Kubernetes' symlink swap),
 * each seen more than once, and nothing for unrelated files in the same directory.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileIdentity, watchFileChanges, type FileWatch } from '../../../src/net/node/file-watch.ts';

const root = mkdtempSync(join(tmpdir(), 'refract-file-watch-'));
after(() => rmSync(root, { recursive: true, force: true }));

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Counts onChange calls; `next()` waits (bounded) for the count to pass what it was when called. */
function counter(): { readonly onChange: () => void; next(what: string): Promise<void>; readonly count: number } {
  let n = 0;
  let waiters: Array<() => void> = [];
  return {
    onChange: () => {
      n++;
      const w = waiters;
      waiters = [];
      for (const f of w) f();
    },
    get count() {
      return n;
    },
    next(what: string) {
      const at = n;
      return new Promise<void>((resolve, reject) => {
        // 10 s: generous for a loaded machine (a 100 ms poll and a 20 ms debounce take well under one).
        const t = setTimeout(() => reject(new Error(`no change seen within 10 s: ${what}`)), 10_000);
        const check = (): void => {
          if (n > at) {
            clearTimeout(t);
            resolve();
          } else waiters.push(check);
        };
        waiters.push(check);
      });
    },
  };
}

const OPTS = { debounceMs: 20, pollMs: 0 } as const;

describe('watchFileChanges', () => {
  it('sees a file written in place, and again', async () => {
    const dir = mkdtempSync(join(root, 'inplace-'));
    const file = join(dir, 'refract.yaml');
    writeFileSync(file, 'a: 1\n');
    const c = counter();
    const w = watchFileChanges(file, c.onChange, OPTS);
    try {
      const first = c.next('first write');
      writeFileSync(file, 'a: 2\n');
      await first;
      const second = c.next('second write');
      writeFileSync(file, 'a: 3\n');
      await second;
    } finally {
      w.close();
    }
  });

  it('reports a change made between the caller reading the file (baseline) and the watch starting, once', async () => {
    const dir = mkdtempSync(join(root, 'baseline-'));
    const file = join(dir, 'refract.yaml');
    writeFileSync(file, 'a: 1\n');
    const baseline = fileIdentity(file); // the caller reads the file now …
    writeFileSync(join(dir, '.tmp'), 'a: 2\n');
    renameSync(join(dir, '.tmp'), file); // … an editor saves it …
    const c = counter();
    const seen = c.next('the save before the watch');
    const w = watchFileChanges(file, c.onChange, { ...OPTS, baseline }); // … and only then does the watch start
    try {
      await seen;
      await sleep(100);
      assert.equal(c.count, 1, 'one call for the one change');
      // Unchanged since the baseline: no call.
      const quiet = counter();
      const w2 = watchFileChanges(file, quiet.onChange, { ...OPTS, baseline: fileIdentity(file) });
      await sleep(100);
      w2.close();
      assert.equal(quiet.count, 0);
    } finally {
      w.close();
    }
  });

  it('sees a file renamed over twice (a new inode each time)', async () => {
    const dir = mkdtempSync(join(root, 'rename-'));
    const file = join(dir, 'refract.yaml');
    writeFileSync(file, 'a: 1\n');
    const c = counter();
    const w = watchFileChanges(file, c.onChange, OPTS);
    try {
      for (const v of [2, 3]) {
        const seen = c.next(`rename ${v}`);
        writeFileSync(join(dir, `.tmp${v}`), `a: ${v}\n`);
        renameSync(join(dir, `.tmp${v}`), file);
        await seen;
      }
    } finally {
      w.close();
    }
  });

  it("follows Kubernetes' ..data symlink swaps, the second and third too, and ignores unrelated files", async () => {
    // file → ..data/refract.yaml, ..data → ..v1/, as kubelet lays out a ConfigMap volume.
    const dir = mkdtempSync(join(root, 'k8s-'));
    mkdirSync(join(dir, '..v1'));
    writeFileSync(join(dir, '..v1', 'refract.yaml'), 'a: 1\n');
    symlinkSync('..v1', join(dir, '..data'));
    symlinkSync('..data/refract.yaml', join(dir, 'refract.yaml'));
    const c = counter();
    let w: FileWatch | undefined;
    try {
      w = watchFileChanges(join(dir, 'refract.yaml'), c.onChange, OPTS);
      assert.ok(w.watching().includes(join(dir, '..v1')), 'the real file directory is watched');
      for (const v of [2, 3, 4]) {
        const seen = c.next(`swap to ..v${v}`);
        // kubelet: new timestamped dir, a temporary link renamed over ..data, the old dir removed.
        mkdirSync(join(dir, `..v${v}`));
        writeFileSync(join(dir, `..v${v}`, 'refract.yaml'), `a: ${v}\n`);
        symlinkSync(`..v${v}`, join(dir, '..data_tmp'));
        renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
        rmSync(join(dir, `..v${v - 1}`), { recursive: true });
        await seen;
        await sleep(60); // let the debounce settle before the next swap
        assert.ok(w.watching().includes(join(dir, `..v${v}`)), `the watch moved to ..v${v}`);
      }
      const before = c.count;
      writeFileSync(join(dir, 'unrelated.log'), 'x\n');
      await sleep(150);
      assert.equal(c.count, before, 'a write to another file in the directory is not a change');
    } finally {
      w?.close();
    }
  });

  it('follows a swapped directory link higher up the path (conf → v1, then v2, then v3), old directories kept', async () => {
    const dir = mkdtempSync(join(root, 'dirlink-'));
    mkdirSync(join(dir, 'v1'));
    writeFileSync(join(dir, 'v1', 'refract.yaml'), 'a: 1\n');
    symlinkSync('v1', join(dir, 'conf'));
    const c = counter();
    const w = watchFileChanges(join(dir, 'conf', 'refract.yaml'), c.onChange, OPTS);
    try {
      for (const v of [2, 3]) {
        const seen = c.next(`swap conf to v${v}`);
        mkdirSync(join(dir, `v${v}`));
        writeFileSync(join(dir, `v${v}`, 'refract.yaml'), `a: ${v}\n`);
        symlinkSync(`v${v}`, join(dir, 'conf.next'));
        renameSync(join(dir, 'conf.next'), join(dir, 'conf'));
        await seen;
        await sleep(60);
        assert.ok(w.watching().includes(join(dir, `v${v}`)), `the watch moved to v${v}`);
      }
    } finally {
      w.close();
    }
  });

  it('carries on with the stat poll alone when no directory of the path can be watched, and watches again once it can', async () => {
    // fs.watch fails on a directory that does not exist (as it does everywhere when inotify's watch limit is
    // reached: ENOSPC); the poll follows the path as given.
    const dir = join(mkdtempSync(join(root, 'poll-only-')), 'not', 'yet');
    const file = join(dir, 'refract.yaml');
    assert.throws(() => watchFileChanges(file, () => {}, { ...OPTS, pollMs: 0 }), { code: 'ENOENT' }, 'without a poll nothing would see a change: it throws');
    const c = counter();
    const w = watchFileChanges(file, c.onChange, { ...OPTS, pollMs: 100 });
    try {
      assert.equal((w.watchError as NodeJS.ErrnoException | undefined)?.code, 'ENOENT');
      assert.deepEqual(w.watching(), []);
      const seen = c.next('the file appearing, seen by the poll');
      mkdirSync(dir, { recursive: true });
      writeFileSync(file, 'a: 1\n');
      await seen;
      assert.ok(w.watching().includes(dir), 'the directory exists now and is watched');
      const again = c.next('a write in place, seen by the watch or the poll');
      writeFileSync(file, 'a: 22\n');
      await again;
    } finally {
      w.close();
    }
  });

  it('the poll sees a file that appears before its first look (10 times: the directory made and the file written at once)', async () => {
    // fs.watchFile took its first stat, on the thread pool after the start, as its baseline: a file that was there by
    // then was never reported (most of 40 tries on a loaded machine).
    for (let i = 0; i < 10; i++) {
      const dir = join(mkdtempSync(join(root, 'early-')), 'not', 'yet');
      const file = join(dir, 'refract.yaml');
      const c = counter();
      const w = watchFileChanges(file, c.onChange, { ...OPTS, pollMs: 50 });
      try {
        const seen = c.next(`try ${i}: the file written right after the start`);
        mkdirSync(dir, { recursive: true });
        writeFileSync(file, 'a: 1\n');
        await seen;
      } finally {
        w.close();
      }
    }
  });

  it('calls nothing after close()', async () => {
    const dir = mkdtempSync(join(root, 'closed-'));
    const file = join(dir, 'refract.yaml');
    writeFileSync(file, 'a: 1\n');
    const c = counter();
    const w = watchFileChanges(file, c.onChange, OPTS);
    w.close();
    writeFileSync(file, 'a: 2\n');
    await sleep(150);
    assert.equal(c.count, 0);
  });

  // Issue #16: the watcher and the stat poll each reported the same change, so serve reloaded twice.
  for (const how of ['written in place', 'renamed over', 'swapped through a directory symlink'] as const) {
    it(`one change ${how} is one call, although the watcher and the poll both see it`, async () => {
      const dir = mkdtempSync(join(root, 'once-'));
      let file = join(dir, 'refract.yaml');
      let change: () => void;
      if (how === 'swapped through a directory symlink') {
        mkdirSync(join(dir, 'v1'));
        writeFileSync(join(dir, 'v1', 'refract.yaml'), 'a: 1\n');
        symlinkSync('v1', join(dir, 'conf'));
        file = join(dir, 'conf', 'refract.yaml');
        change = () => {
          mkdirSync(join(dir, 'v2'));
          writeFileSync(join(dir, 'v2', 'refract.yaml'), 'a: 2\n');
          symlinkSync('v2', join(dir, 'conf.next'));
          renameSync(join(dir, 'conf.next'), join(dir, 'conf'));
        };
      } else {
        writeFileSync(file, 'a: 1\n');
        change =
          how === 'written in place'
            ? () => writeFileSync(file, 'a: 22\n')
            : () => {
                writeFileSync(join(dir, '.tmp'), 'a: 2\n');
                renameSync(join(dir, '.tmp'), file);
              };
      }
      const c = counter();
      // A poll every 40 ms: it sees the change after the watcher has reported it, several times over below.
      const w = watchFileChanges(file, c.onChange, { debounceMs: 20, pollMs: 40 });
      try {
        const seen = c.next(how);
        change();
        await seen;
        await sleep(400); // ten poll intervals
        assert.equal(c.count, 1);
      } finally {
        w.close();
      }
    });
  }
});
