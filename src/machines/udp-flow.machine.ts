/**
 * The lifecycle of one UDP flow — the datagrams between one (client ip, client port) and one (edge ip, edge port) —
 * as an XState v5 machine, executed by `MachineHost` under the same contract as `tcpConnection` (no context,
 * no assign, named actions implemented in `udp-flow.ts`).
 *
 * Datagrams never become events: the engine forwards them itself and keeps counters; the machine hears only that
 * the upstream socket is ready or failed, that the flow went idle, and drain/abort.
 *
 * ```
 * opening ──UPSTREAM.READY──► active ──FLOW.IDLE / DRAIN_DEADLINE / FILTERED / ABORT──► closed
 *    └──UPSTREAM.FAILED / RESOLVE_FAILED──────────────────────────────────────────────┘
 * ```
 */
import { setup } from 'xstate';
import type { ErrorCode } from '../model/errors.ts';

export type UdpFlowEvent =
  | { type: 'UPSTREAM.READY' }
  | { type: 'UPSTREAM.FAILED'; code: ErrorCode; detail: string }
  | { type: 'FLOW.IDLE' }
  | { type: 'FLOW.DRAIN_DEADLINE' }
  /** A new access rule blocks the flow's client (only with `edge.close_blocked_connections`). */
  | { type: 'FLOW.FILTERED' }
  | { type: 'FLOW.ABORT' };

const todo = (): void => {
  throw new Error('udpFlow actions run only through MachineHost with an impl table');
};

export const udpFlowMachine = setup({
  types: { events: {} as UdpFlowEvent },
  actions: {
    openUpstream: todo,
    startRelay: todo,
    recordUpstreamFailed: todo,
    recordIdle: todo,
    recordDrainDeadline: todo,
    recordFiltered: todo,
    recordAbort: todo,
    finish: todo,
  },
}).createMachine({
  id: 'udpFlow',
  initial: 'opening',
  on: {
    'FLOW.DRAIN_DEADLINE': { target: '.closed', actions: 'recordDrainDeadline' },
    'FLOW.FILTERED': { target: '.closed', actions: 'recordFiltered' },
    'FLOW.ABORT': { target: '.closed', actions: 'recordAbort' },
  },
  states: {
    opening: {
      entry: 'openUpstream',
      on: {
        'UPSTREAM.READY': 'active',
        'UPSTREAM.FAILED': { target: 'closed', actions: 'recordUpstreamFailed' },
      },
    },
    active: {
      entry: 'startRelay',
      on: { 'FLOW.IDLE': { target: 'closed', actions: 'recordIdle' } },
    },
    closed: { type: 'final', entry: 'finish' },
  },
});

export type UdpFlowActionName = keyof typeof udpFlowMachine.implementations.actions;
