/**
 * The layer rule of eslint.config.js (docs/architecture.md#layers) fires on imports that cross a layer the wrong
 * way and stays quiet on allowed ones. One ESLint instance over the real config; only no-restricted-imports runs,
 * and without the type-aware project service, so virtual file paths can be linted (the rule needs no types).
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';

const cwd = fileURLToPath(new URL('../../../', import.meta.url));
let eslint: ESLint;

/** The no-restricted-imports messages for `code` as if it were the file `filePath`. */
async function restricted(filePath: string, code: string): Promise<string[]> {
  const [r] = await eslint.lintText(code, { filePath });
  assert.ok(r, 'one result');
  const fatal = r.messages.filter((m) => m.fatal === true);
  assert.deepEqual(fatal, [], 'the snippet parses');
  return r.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

describe('layer lint rule', () => {
  before(() => {
    eslint = new ESLint({
      cwd,
      ruleFilter: ({ ruleId }) => ruleId === 'no-restricted-imports',
      overrideConfig: { files: ['**/*.ts'], languageOptions: { parserOptions: { projectService: false } } },
    });
  });

  const bad: ReadonlyArray<readonly [string, string, RegExp]> = [
    ['src/core/x.ts', "import { EdgeNode } from '../edge/edge-node.ts';", /src\/core may import only src\/model/],
    ['src/streams/x.ts', "import type { AccessDecision } from '../core/access-rules.ts';", /src\/streams may import only src\/model/],
    ['src/net/node/x.ts', "import { compileAccessRules } from '../../core/access-rules.ts';", /src\/net\/node may import only/],
    ['src/net/node/x.ts', "import { createSim } from '../sim/index.ts';", /src\/net\/node may import only/],
    ['src/model/x.ts', "import { mapPort } from '../core/port-map.ts';", /src\/model imports nothing of ours/],
    ['src/net/sim/x.ts', "import { decide } from '../../core/access-rules.ts';", /src\/net\/sim may import only/],
    ['src/machines/x.ts', "import { EdgeNode } from '../edge/edge-node.ts';", /src\/machines may import only/],
    ['src/edge/x.ts', "import { createNodeNetwork } from '../net/node/network.ts';", /src\/edge depends on src\/net\/ports.ts/],
    ['src/scenario/x.ts', "import { createNodeNetwork } from '../net/node/network.ts';", /src\/scenario runs in the simulator only/],
    ['src/dns/x.ts', "import { EdgeNode } from '../edge/edge-node.ts';", /src\/dns may import only src\/model and src\/net\/ports.ts/],
    ['src/dns/x.ts', "import { createNodeNetwork } from '../net/node/network.ts';", /src\/dns may import only/],
  ];
  for (const [file, code, why] of bad) {
    it(`refuses ${file}: ${code}`, async () => {
      const messages = await restricted(file, `${code}\nexport {};\n`);
      assert.equal(messages.length, 1, messages.join('\n'));
      assert.match(messages[0] ?? '', why);
    });
  }

  const good: ReadonlyArray<readonly [string, string]> = [
    ['src/core/x.ts', "import type { PortRange } from '../model/types.ts';\nimport { inRange } from './port-map.ts';"],
    ['src/streams/x.ts', "import type { TlsMode } from '../model/types.ts';"],
    ['src/net/node/x.ts', "import * as net from 'node:net';\nimport type { Conn } from '../ports.ts';\nimport { parseIpLiteral } from '../../model/ip.ts';"],
    ['src/net/sim/x.ts', "import { serverDecide } from '../../core/tls-model.ts';\nimport type { Conn } from '../ports.ts';"],
    ['src/net/sim/x.ts', "import { DescriptorGuard } from '../descriptor-guard.ts';"],
    ['src/net/node/x.ts', "import { DescriptorGuard } from '../descriptor-guard.ts';"],
    ['src/machines/x.ts', "import { splice } from '../net/splice.ts';\nimport { decide } from '../core/access-rules.ts';\nimport type { EventLog } from '../streams/events.ts';"],
    ['src/edge/x.ts', "import { TcpEngine } from '../machines/tcp-connection.ts';\nimport type { Network } from '../net/ports.ts';"],
    ['src/scenario/x.ts', "import { createSim } from '../net/sim/index.ts';\nimport { EdgeNode } from '../edge/edge-node.ts';"],
    ['src/dns/x.ts', "import type { Network } from '../net/ports.ts';\nimport { RefractError } from '../model/errors.ts';\nimport { answerQuery } from './answer.ts';"],
  ];
  for (const [file, code] of good) {
    it(`allows ${file}: ${code.split('\n').join(' ')}`, async () => {
      assert.deepEqual(await restricted(file, `${code}\nexport {};\n`), []);
    });
  }

  it('keeps src/dashboard (browser code) to preact, uplot, its own files and type-only src/model imports', async () => {
    const dash = new ESLint({
      cwd,
      ruleFilter: ({ ruleId }) => ruleId === '@typescript-eslint/no-restricted-imports',
      overrideConfig: { files: ['**/*.tsx'], languageOptions: { parserOptions: { projectService: false } } },
    });
    const lint = async (file: string, code: string): Promise<string[]> => {
      const [r] = await dash.lintText(`${code}\nexport {};\n`, { filePath: file });
      assert.ok(r);
      assert.deepEqual(r.messages.filter((m) => m.fatal === true), [], 'the snippet parses');
      return r.messages.filter((m) => m.ruleId === '@typescript-eslint/no-restricted-imports').map((m) => m.message);
    };
    assert.deepEqual(await lint('src/dashboard/x.tsx', "import { render } from 'preact';\nimport uPlot from 'uplot';\nimport { call } from './api.ts';\nimport type { NodeHealth } from '../model/engine-view.ts';"), []);
    assert.deepEqual(await lint('src/dashboard/pages/x.tsx', "import { useState } from 'preact/hooks';\nimport { call } from '../api.ts';\nimport type { MachineGraph } from '../../model/engine-view.ts';"), []);
    for (const [file, code, why] of [
      ['src/dashboard/x.tsx', "import { readFileSync } from 'node:fs';", /runs in the browser/],
      ['src/dashboard/x.tsx', "import { z } from 'zod';", /runs in the browser/],
      ['src/dashboard/x.tsx', "import { ERRORS } from '../model/errors.ts';", /as types only/],
      ['src/dashboard/x.tsx', "import { createApiServer } from '../api/server.ts';", /only type-only src\/model/],
      ['src/dashboard/pages/x.tsx', "import { EdgeNode } from '../../edge/edge-node.ts';", /only type-only src\/model/],
    ] as const) {
      const messages = await lint(file, code);
      assert.ok(messages.length >= 1, `${file}: ${code} is refused`);
      assert.match(messages[0] ?? '', why);
    }
  });

  it('keeps the determinism rule: real sockets only in src/net/node', async () => {
    const messages = await restricted('src/core/x.ts', "import * as net from 'node:net';\nexport {};\n");
    assert.equal(messages.length, 1);
    assert.match(messages[0] ?? '', /Real I\/O and timers live only in src\/net\/node/);
    const dns = await restricted('src/dns/x.ts', "import * as dgram from 'node:dgram';\nexport {};\n");
    assert.equal(dns.length, 1, 'the DNS server binds through the Network port, never node:dgram');
    assert.match(dns[0] ?? '', /Real I\/O and timers live only in src\/net\/node/);
  });
});
