/**
 * What the management API tells the dashboard about the engine, as plain data: the state machines' graphs (drawn
 * from their XState definitions by src/machines/diagram.ts `toGraph`), the number of open connections and flows in
 * each state, and the node's health. Pure types: the server builds them, the browser code (src/dashboard) imports
 * them as types only.
 */

/** One state of a machine graph. `id` is its path joined by `.` (`established.c2s.open`); top-level ids are keys. */
export interface GraphState {
  readonly id: string;
  readonly key: string;
  /** The parent's id; '' for a top-level state. */
  readonly parent: string;
  readonly type: 'atomic' | 'compound' | 'parallel' | 'final' | 'history';
  /** Whether it is its parent's (or the machine's) initial state. */
  readonly initial: boolean;
  readonly entry: readonly string[];
  readonly exit: readonly string[];
}

/** One transition: `from` → `to` (equal for a self-transition), on `event` (`after <delay>` for a delayed one). */
export interface GraphTransition {
  readonly from: string;
  readonly to: string;
  readonly event: string;
  readonly guard: string;
  readonly actions: readonly string[];
  /** Targetless (actions only) or re-entering self-transitions are marked. */
  readonly mark: '' | 'stays' | 're-enter';
}

/** A machine as a graph: its states in definition order, its transitions, and the events handled in every state. */
export interface MachineGraph {
  readonly id: string;
  /** 'tcp' for tcpConnection, 'udp' for udpFlow: which engine's instances run it. */
  readonly proto: 'tcp' | 'udp';
  readonly states: readonly GraphState[];
  readonly transitions: readonly GraphTransition[];
  /** Transitions of the root (handled in any state): `from` is ''. */
  readonly anyState: readonly GraphTransition[];
}

/**
 * Open connections (tcp) or flows (udp) per state right now. Each instance counts once in its top-level state and
 * once in each nested state it is in (`established`, `established.c2s.open`, `established.s2c.open`).
 */
export interface EngineStates {
  readonly tcp: { readonly active: number; readonly states: Readonly<Record<string, number>> };
  readonly udp: { readonly active: number; readonly states: Readonly<Record<string, number>> };
}

/** One configuration apply as the health page lists it. */
export interface ApplyRecord {
  /** RFC 3339 wall time. */
  readonly at: string;
  /** start: the first apply; file: a reload of the config file; api: an API write. */
  readonly trigger: 'start' | 'file' | 'api';
  readonly ok: boolean;
  readonly added: number;
  readonly removed: number;
  readonly changed: number;
  /** The error code and message of a rejected reload ('' when applied). */
  readonly code: string;
  readonly message: string;
}

/** A recent connection or flow error (a closing event with a Status other than 200). */
export interface RecentError {
  readonly at: string;
  readonly app: string;
  readonly appName: string;
  readonly event: string;
  readonly status: number;
  readonly code: string;
  readonly client: string;
}

/** What a line output reports (stderr log, stdout, events file): totals since start, bytes held now. */
export interface OutputStats {
  readonly written: number;
  readonly dropped: number;
  readonly bufferedBytes: number;
}

/** The node's log outputs and the connection-path log limit, as the health endpoint shows them. */
export interface LogHealth {
  /** Connection-path log lines suppressed by `log.rate_limit` since start (summed up in summary lines). */
  readonly suppressed: number;
  /** Each output (stderr, stdout, events_file) with what it wrote and dropped. */
  readonly outputs: ReadonlyArray<OutputStats & { readonly output: string }>;
}

export interface NodeHealth {
  /** Seconds since the API server was created, on the node's monotonic clock. */
  readonly uptimeSec: number;
  readonly version: string;
  /** Bound edge addresses with their app's id and DNS name ('' for none). */
  readonly listeners: ReadonlyArray<{ readonly protocol: 'tcp' | 'udp'; readonly host: string; readonly port: number; readonly app: string; readonly name: string }>;
  readonly connections: { readonly tcp: number; readonly udp: number };
  /** The most recent applies, newest first (at most 20). */
  readonly applies: readonly ApplyRecord[];
  /** The most recent errors, newest first (at most 20). */
  readonly errors: readonly RecentError[];
  readonly logs: LogHealth;
}
