/**
 * The deterministic simulated network: implementations of the `Clock`, `Random` and `Network` ports of
 * `src/net/ports.ts` over virtual hosts, links and time. See `README.md` here for what is and is not modelled, and
 * `docs/simulator.md` for how to use it.
 */
export { createSim, Sim, type SimOptions, type SimEvent, type Direction, type Netstat, type NetstatConn } from './sim.ts';
export { SimHost, type HostOptions } from './host.ts';
export { VirtualClock, SIM_EPOCH_MS, type RunLimits, type RunResult, type TimerHandle } from './virtual-clock.ts';
export { Prng } from './prng.ts';
export { Link, DEFAULT_LINK, type LinkParams, type LinkStats, type SlicerParams, type CutParams, type JitterDistribution } from './fabric.ts';
export { DEFAULT_TCP, type TcpParams } from './kernel.ts';
export { SimDns, type DnsRecordInput, type DnsFailure } from './sim-dns.ts';
