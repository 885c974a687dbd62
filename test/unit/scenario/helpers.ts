// Shared helpers for the scenario tests (not a test file itself).
import YAML from 'yaml';
import { type ScenarioFile } from '../../../src/scenario/types.ts';

/** A small valid scenario: one edge, one client, an echo origin, one app on port 7000, one exchange. */
export function minimal(): Record<string, any> {
  return {
    name: 'minimal',
    seed: 1,
    topology: {
      edges: [{ name: 'edge', addresses: ['198.51.100.1'] }],
      clients: [{ name: 'alice', addresses: ['203.0.113.10'] }],
      origins: [{ name: 'echo', addresses: ['192.0.2.10'], listeners: [{ listen: 'tcp://192.0.2.10:7000', behaviour: 'echo' }] }],
    },
    apps: [{ id: 'echo', protocol: 'tcp/7000', dns: { name: 'echo.example.test' }, origin_direct: ['tcp://192.0.2.10:7000'] }],
    timeline: [
      { at: 0, connect: { id: 'c', client: 'alice', to: '198.51.100.1:7000' } },
      { at: 10, send: { id: 'c', text: 'hi' } },
      { at: 20, end: { id: 'c' } },
    ],
    expect: { connections: [{ id: 'c', status: 200, received: 'hi' }] },
  };
}

/** `minimal()` changed by `edit`, as a ScenarioFile (not validated: runScenario validates). */
export function scenario(edit: (s: Record<string, any>) => void = () => {}): ScenarioFile {
  const s = minimal();
  edit(s);
  return s as ScenarioFile;
}

export function yamlOf(s: unknown): string {
  return YAML.stringify(s);
}
