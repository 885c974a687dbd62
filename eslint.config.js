// ESLint flat config. The determinism rule (docs/architecture.md, "Determinism"): outside src/net/node, nothing in src/
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

// What each folder of src/ may import of ours: `deny` is a regular expression over the import specifier (relative
// paths, so `../` leaves the folder). The table and the reasons are in docs/architecture.md#layers and the folder
// READMEs; test/unit/lint/layers.test.ts proves the rule fires.
const LAYERS = [
  { files: ['src/model/**/*.ts'], deny: String.raw`^\.\./`, says: 'src/model imports nothing of ours' },
  { files: ['src/core/**/*.ts'], deny: String.raw`^\.\./(?!model/)`, says: 'src/core may import only src/model' },
  { files: ['src/streams/**/*.ts'], deny: String.raw`^\.\./(?!model/)`, says: 'src/streams may import only src/model' },
  { files: ['src/net/*.ts'], deny: String.raw`^\.\./(?!model/)`, says: 'src/net/ports.ts, splice.ts, handler-slots.ts and descriptor-guard.ts may import only src/model' },
  // net/node may touch real I/O and time (the determinism rule's one exception). geo-loader.ts feeds the files it
  // reads and watches to core/geo.ts's pure parsers: src/net/node/README.md.
  { files: ['src/net/node/**/*.ts'], deny: String.raw`^\.\./(?!ports\.ts$|handler-slots\.ts$|descriptor-guard\.ts$|\.\./model/|\.\./core/geo\.ts$)`, io: true, says: 'src/net/node may import only src/model, src/net/ports.ts, src/net/handler-slots.ts, src/net/descriptor-guard.ts and src/core/geo.ts' },
  // The simulated TLS is the TLS model run over simulated bytes: src/net/sim/README.md.
  { files: ['src/net/sim/**/*.ts'], deny: String.raw`^\.\./(?!ports\.ts$|handler-slots\.ts$|descriptor-guard\.ts$|\.\./model/|\.\./core/tls-model\.ts$)`, says: 'src/net/sim may import only src/model, src/net/ports.ts, src/net/handler-slots.ts, src/net/descriptor-guard.ts and src/core/tls-model.ts' },
  { files: ['src/machines/**/*.ts'], deny: String.raw`^\.\./(?!model/|core/|streams/|net/ports\.ts$|net/splice\.ts$)`, says: 'src/machines may import only src/model, src/core, src/streams, src/net/ports.ts and src/net/splice.ts' },
  { files: ['src/edge/**/*.ts'], deny: String.raw`(^|/)net/(node|sim)/|^\.\./(scenario/|cli/|cli\.ts$|log\.ts$)`, says: 'src/edge depends on src/net/ports.ts, never on an implementation (net/node, net/sim), nor on scenario or the CLI' },
  // The authoritative DNS server runs over the Network port, on real sockets and in the simulator: src/dns/README.md.
  { files: ['src/dns/**/*.ts'], deny: String.raw`^\.\./(?!model/|net/ports\.ts$)`, says: 'src/dns may import only src/model and src/net/ports.ts' },
  { files: ['src/scenario/**/*.ts'], deny: String.raw`(^|/)net/node/|^\.\./(cli/|cli\.ts$|log\.ts$)`, says: 'src/scenario runs in the simulator only: no src/net/node, nor the CLI' },
  // The management API is a real HTTP server with a real database and wall-clock timestamps: it is the second place
  // real I/O may live (src/api/README.md), and it drives the engine only through src/edge.
  { files: ['src/api/**/*.ts'], deny: String.raw`^\.\./(?!model/|core/|streams/|edge/)`, io: true, says: 'src/api may import only src/model, src/core, src/streams and src/edge' },
  { files: ['src/log.ts'], deny: String.raw`(^|/)net/(node|sim)/`, says: 'src/log.ts depends on src/net/ports.ts, never on an implementation' },
];

// The dashboard's browser code (src/dashboard, bundled by esbuild for the browser): preact, uplot and its own files,
// plus pure types of src/model (type-only imports); never Node modules, other packages or other folders of ours.
// It runs in the browser, not the engine, so the determinism rule does not apply there (it polls with setInterval).
const DASHBOARD = {
  files: ['src/dashboard/**/*.ts', 'src/dashboard/**/*.tsx'],
  rules: {
    '@typescript-eslint/no-restricted-imports': ['error', {
      patterns: [
        { regex: String.raw`^(?!preact(/|$)|uplot(/|$)|\.\.?/)`, message: 'src/dashboard runs in the browser: it imports only preact, uplot and its own files (docs/dashboard.md).' },
        { regex: String.raw`^\.\./\.\./(?!model/)|^\.\./(?!model/|api\.ts$|pages/)`, message: 'src/dashboard imports of ours only type-only src/model files (docs/dashboard.md).' },
        { regex: String.raw`^\.\.?/(\.\./)?model/`, allowTypeImports: true, message: 'src/dashboard imports src/model as types only (docs/dashboard.md).' },
      ],
    }],
  },
};

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'bench/results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.tsx'],
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
    },
  },
  // Layers (docs/architecture.md#layers): each folder imports only the folders below it. A block's
  // no-restricted-imports replaces any earlier one's, so each carries the determinism rule's module list too
  // (all but net/node, which is where real I/O lives).
  ...LAYERS.map(({ files, deny, io, says }) => ({
    files,
    rules: {
      'no-restricted-imports': ['error', {
        paths: io ? [] : hostModules.map((name) => ({ name, message: 'Real I/O and timers live only in src/net/node (Network/Clock ports).' })),
        patterns: [{ regex: deny, message: `${says} (docs/architecture.md#layers).` }],
      }],
    },
  })),
  DASHBOARD,
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
);
