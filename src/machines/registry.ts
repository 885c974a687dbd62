/**
 * The machines the engine runs, by XState id, in the order they are printed (`refract machines`) and drawn (the
 * dashboard's live view), with the engine whose instances run each.
 */
import type { AnyStateMachine } from 'xstate';
import { tcpConnectionMachine } from './tcp-connection.machine.ts';
import { udpFlowMachine } from './udp-flow.machine.ts';

export const MACHINES: Readonly<Record<string, AnyStateMachine>> = {
  [tcpConnectionMachine.id]: tcpConnectionMachine,
  [udpFlowMachine.id]: udpFlowMachine,
};

export const MACHINE_PROTO: Readonly<Record<string, 'tcp' | 'udp'>> = {
  [tcpConnectionMachine.id]: 'tcp',
  [udpFlowMachine.id]: 'udp',
};
