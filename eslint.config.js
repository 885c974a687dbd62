// ESLint flat config. The determinism rule (shared/DESIGN.md, rule 2): outside src/net/node, nothing in src/
// may read wall time, draw randomness, arm host timers or open real sockets: those come from the Network/Clock
// ports so the simulator can replay any run from a seed.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const hostTime = [
  { name: 'setTimeout', message: 'Use the Clock port (clock.setTimer); see docs/architecture.md#determinism.' },
  { name: 'setInterval', message: 'Use the Clock port (clock.setTimer); see docs/architecture.md#determinism.' },
  { name: 'setImmediate', message: 'Use the Clock port; see docs/architecture.md#determinism.' },
  { name: 'performance', message: 'Use the Clock port (clock.now); see docs/architecture.md#determinism.' },
];
const hostProps = [
  { object: 'Date', property: 'now', message: 'Use the Clock port (clock.now / clock.epochMs).' },
  { object: 'Math', property: 'random', message: 'Use the Random port (network.random).' },
  { object: 'performance', property: 'now', message: 'Use the Clock port (clock.now).' },
];
const hostModules = ['net', 'dgram', 'tls', 'dns', 'node:net', 'node:dgram', 'node:tls', 'node:dns', 'dns/promises', 'node:dns/promises', 'timers', 'node:timers', 'timers/promises', 'node:timers/promises'];

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'bench/results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': ['error', {
        allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'before', 'after', 'beforeEach', 'afterEach'] }],
      }],
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/net/node/**', 'src/cli.ts', 'src/cli/**'],
    rules: {
      'no-restricted-globals': ['error', ...hostTime],
      'no-restricted-properties': ['error', ...hostProps],
      'no-restricted-imports': ['error', {
        paths: hostModules.map((name) => ({ name, message: 'Real I/O and timers live only in src/net/node (Network/Clock ports).' })),
        patterns: [{ group: ['**/net/node/**', '**/net/sim/**'], message: 'Depend on src/net/ports.ts, not on an implementation.' }],
      }],
    },
  },
  {
    // The simulator implements the ports; it may import its own files but never the real network.
    files: ['src/net/sim/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: hostModules.map((name) => ({ name, message: 'The simulator must not touch real I/O or timers.' })),
        patterns: [{ group: ['**/net/node/**'], message: 'The simulator must not depend on the real network.' }],
      }],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
);
