/**
 * node.user / node.group: dropping root after binding. The refusals run against a stand-in process (nothing may
 * change before them); the real switch runs in a child process when the tests run as root (skipped otherwise,
 * since only root can switch users), and checks uid, gid, supplementary groups and the writable-directory check.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dropPrivileges, handOver, primaryGroupOf, type PrivilegeProcess } from '../../../src/cli/privileges.ts';
import { isRefractError } from '../../../src/model/errors.ts';

function fakeProc(uid: number, fail: Partial<Record<'setuid' | 'setgid' | 'initgroups', string>> = {}): PrivilegeProcess & { calls: string[] } {
  const calls: string[] = [];
  let cur = uid;
  let gid = 0;
  const call = (name: 'setuid' | 'setgid' | 'initgroups', ...args: unknown[]): void => {
    calls.push(`${name}(${args.map(String).join(',')})`);
    if (fail[name] !== undefined) throw new Error(fail[name]);
  };
  return {
    calls,
    getuid: () => cur,
    getgid: () => gid,
    initgroups: (u, g) => call('initgroups', u, g),
    setgid: (g) => {
      call('setgid', g);
      gid = typeof g === 'number' ? g : 4242;
    },
    setuid: (u) => {
      call('setuid', u);
      cur = typeof u === 'number' ? u : 4343;
    },
  };
}

const code = (c: string, detail?: [string, unknown]) => (e: unknown) => {
  assert.ok(isRefractError(e), String(e));
  assert.equal(e.code, c);
  if (detail) assert.equal(e.details?.[detail[0]], detail[1]);
  return true;
};

void describe('dropping root (node.user, node.group)', () => {
  void it('does nothing without node.user, and refuses node.group alone', () => {
    const p = fakeProc(0);
    assert.equal(dropPrivileges({}, p), undefined);
    assert.throws(() => dropPrivileges({ group: 'nogroup' }, p), code('E_PRIVILEGES_UNKNOWN', ['group', 'nogroup']));
    assert.deepEqual(p.calls, []);
  });

  void it('refuses when not root, before changing anything', () => {
    const p = fakeProc(1000);
    assert.throws(() => dropPrivileges({ user: 'refract' }, p, () => 999), code('E_PRIVILEGES_NOT_ROOT', ['user', 'refract']));
    assert.deepEqual(p.calls, []);
  });

  void it('refuses an unknown user or group with E_PRIVILEGES_UNKNOWN', () => {
    const p = fakeProc(0);
    assert.throws(() => dropPrivileges({ user: 'no-such-user' }, p, () => undefined), code('E_PRIVILEGES_UNKNOWN', ['user', 'no-such-user']));
    assert.deepEqual(p.calls, []);
    const q = fakeProc(0, { setgid: 'setgid group id does not exist' });
    assert.throws(() => dropPrivileges({ user: 'refract', group: 'no-such-group' }, q, () => 999), code('E_PRIVILEGES_UNKNOWN', ['group', 'no-such-group']));
    assert.ok(!q.calls.some((c) => c.startsWith('setuid')), 'still root after a failed setgid');
  });

  void it('sets supplementary groups, then the group, then the user (numeric ids too), defaulting to the primary group', () => {
    const p = fakeProc(0);
    assert.deepEqual(dropPrivileges({ user: 'refract' }, p, () => 999), { uid: 4343, gid: 999 });
    assert.deepEqual(p.calls, ['initgroups(refract,999)', 'setgid(999)', 'setuid(refract)']);
    const q = fakeProc(0);
    dropPrivileges({ user: '65534', group: 'nogroup' }, q, () => 65534);
    assert.deepEqual(q.calls, ['initgroups(65534,nogroup)', 'setgid(nogroup)', 'setuid(65534)']);
  });

  void it('finds a primary group through id(1), and nothing for an unknown user', () => {
    assert.equal(primaryGroupOf('root'), 0);
    assert.equal(primaryGroupOf('no-such-user-refract-test'), undefined);
    assert.equal(primaryGroupOf('-u'), undefined); // never read as an option
  });

  const root = process.getuid?.() === 0;
  const nobody = root ? primaryGroupOf('nobody') : undefined;
  void it(
    'really becomes the user in a child process (root only), and then finds a root-only directory unwritable',
    { skip: !root ? 'needs root: only root can switch users' : nobody === undefined ? 'no user nobody on this host' : false, timeout: 60_000 },
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'refract-priv-'));
      try {
        chmodSync(dir, 0o755);
        const mine = join(dir, 'mine');
        const theirs = join(dir, 'theirs');
        mkdirSync(mine, { mode: 0o700 });
        mkdirSync(theirs, { mode: 0o700 });
        const uid = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim());
        // handOver: the data directory, its files and certs/ with its files become the user's; symlinks are not followed.
        const data = join(dir, 'data');
        mkdirSync(join(data, 'certs'), { recursive: true, mode: 0o700 });
        writeFileSync(join(data, 'ca-key.pem'), 'k', { mode: 0o600 });
        writeFileSync(join(data, 'certs', 'app.pem'), 'k', { mode: 0o600 });
        symlinkSync('/etc/hostname', join(data, 'link'));
        handOver([data], 'nobody', undefined);
        for (const p of [data, join(data, 'ca-key.pem'), join(data, 'certs'), join(data, 'certs', 'app.pem')]) assert.deepEqual([statSync(p).uid, statSync(p).gid], [uid, nobody], p);
        assert.equal(statSync('/etc/hostname').uid, 0, 'a symlink target is left alone');
        assert.throws(() => handOver([data], 'no-such-user-refract-test', undefined), code('E_PRIVILEGES_UNKNOWN'));
        chownSync(theirs, uid, nobody ?? 0);
        const script = `
          import { dropPrivileges, assertWritableAfterDrop } from ${JSON.stringify(new URL('../../../src/cli/privileges.ts', import.meta.url).href)};
          const ids = dropPrivileges({ user: 'nobody' });
          const out = { ids, uid: process.getuid(), euid: process.geteuid(), gid: process.getgid(), groups: process.getgroups() };
          assertWritableAfterDrop([${JSON.stringify(theirs)}], 'nobody');
          try { assertWritableAfterDrop([${JSON.stringify(mine)}], 'nobody'); out.mine = 'writable'; } catch (e) { out.mine = e.code + ' ' + e.details.path; }
          try { process.setuid(0); out.back = 'became root again'; } catch { out.back = 'no way back'; }
          console.log(JSON.stringify(out));`;
        const text = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', cwd: process.cwd() });
        const out = JSON.parse(text.trim().split('\n').pop() ?? '{}') as Record<string, unknown>;
        assert.deepEqual(out['ids'], { uid, gid: nobody });
        assert.equal(out['uid'], uid);
        assert.equal(out['euid'], uid);
        assert.equal(out['gid'], nobody);
        assert.ok(!(out['groups'] as number[]).includes(0), `root's groups dropped: ${JSON.stringify(out['groups'])}`);
        assert.equal(out['mine'], `E_PRIVILEGES_UNWRITABLE ${mine}`);
        assert.equal(out['back'], 'no way back');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
