/**
 * The simulated world of one run: the simulator on the run's seed, one host per edge, client and origin
 * (`sim.host`), the topology's links and DNS records, the scenario's certificates; then the loop that runs it in
 * virtual time until nothing is left to do, `max_time_ms`, or the step budget.
 *
 * The one file of `src/scenario` that imports `src/net/sim`. What runs on the hosts is elsewhere: the engine on the
 * edges (`edges.ts`), origin behaviours (`origins.ts`), scripted clients (`clients.ts`).
 */
import { type CertInfo, type CertSource } from '../net/ports.ts';
import { createSimCertSource, simCert, SIM_LOCAL_CA, SIM_PUBLIC_CA } from '../net/sim/sim-certs.ts';
import { createSim, type LinkParams, type Sim, type SimHost } from '../net/sim/index.ts';
import { parseSrvRecord, scenarioPools } from './schema.ts';
import { type DescriptorCounts, type ScenarioFile, type Topology } from './types.ts';

type LinkSpec = NonNullable<Topology['links']>[number];
type DnsSpec = NonNullable<Topology['dns']>[number];

/** Why a run ended: nothing left to do, `max_time_ms` reached, or the step budget spent. */
export type StoppedBy = 'idle' | 'max_time' | 'max_steps';

/** Simulator events per slice between progress reports. */
const SLICE_STEPS = 2_000;

/** The simulator and the hosts, links, DNS records and certificates a scenario's topology declares. */
export class World {
  readonly sim: Sim;
  readonly topo: Topology;
  /** Certificate descriptors by id, anchored at the run's start (validity 'expired' = ended 30 days before it). */
  readonly certs: ReadonlyMap<string, CertInfo>;
  readonly #hosts = new Map<string, SimHost>();

  constructor(sc: ScenarioFile, seed: number) {
    this.sim = createSim({ seed });
    this.topo = sc.topology;
    const topo = this.topo;
    // An edge owns its pools whole (validation allows pools with one edge only): any address allocated from them binds there.
    const pools = scenarioPools(sc.edge, sc.timeline.map((s) => ('reload' in s ? s.reload.edge : undefined)));
    for (const h of topo.edges) {
      this.#hosts.set(
        h.name,
        this.sim.host(h.name, {
          addresses: h.addresses,
          ...(pools.length > 0 ? { prefixes: pools } : {}),
          ...(h.max_descriptors === undefined ? {} : { maxDescriptors: h.max_descriptors }),
          ...(h.descriptor_reserve === undefined ? {} : { descriptorReserve: h.descriptor_reserve }),
        }),
      );
    }
    for (const h of [...topo.clients, ...topo.origins]) this.#hosts.set(h.name, this.sim.host(h.name, { addresses: h.addresses }));
    for (const l of topo.links ?? []) this.link(l);
    for (const d of topo.dns ?? []) this.setDns(d);
    const startEpoch = this.sim.clock.epochMs();
    this.certs = new Map<string, CertInfo>(
      (sc.certificates ?? []).map((c) => [
        c.id,
        simCert({ id: c.id, names: c.names, ...(c.key_type ? { keyType: c.key_type } : {}), ...(c.validity ? { validity: c.validity } : {}), ...(c.issuer ? { issuer: c.issuer } : {}) }, startEpoch),
      ]),
    );
  }

  /** The host named `name` (validation made every name in the file resolve). */
  host(name: string): SimHost {
    return this.#hosts.get(name)!;
  }

  /** The certificate source of an edge on `host`: the scenario's certificates, valid as of the host's clock. */
  certSource(host: SimHost): CertSource {
    return createSimCertSource({ epochMs: () => host.clock.epochMs(), certs: [...this.certs.values()] });
  }

  /**
   * A seeded stream of ids of 32 hex characters (the management API's app ids), its own split of the run's seed keyed
   * by `label`: the same seed gives the same ids, and drawing them shifts no other random stream.
   */
  ids(label: string): () => string {
    const r = this.sim.random.split(`ids:${label}`);
    return () => Array.from({ length: 4 }, () => r.nextU32().toString(16).padStart(8, '0')).join('');
  }

  /**
   * The id of a `resolve` step's DNS query (16 bits), from its own split of the run's seed keyed by the step's id:
   * the same seed gives the same ids, and drawing them shifts no other random stream.
   */
  dnsQueryId(resolveId: string): number {
    return this.sim.random.split(`dns-query:${resolveId}`).nextU32() & 0xffff;
  }

  /** The CAs a verifying scenario client trusts: the simulator's public and local CA. */
  simCas(): CertInfo[] {
    return [SIM_PUBLIC_CA, SIM_LOCAL_CA];
  }

  /** Sets a link's parameters (a topology link, or a timeline `link` step that changes one). */
  link(l: LinkSpec): void {
    this.sim.link(l.between[0], l.between[1], linkParams(l), { direction: l.direction ?? 'both' });
  }

  setDns(d: DnsSpec): void {
    const records = d.type === 'SRV' ? d.records.map((r) => parseSrvRecord(r)!) : d.records;
    this.sim.dns.set(d.name, d.type, records, d.ttl);
  }

  /**
   * Runs the simulator in slices of SLICE_STEPS events, reporting progress after each, until it is idle, the next
   * event is past `maxMs`, or `maxSteps` events have fired.
   */
  async run(maxMs: number, maxSteps: number, onProgress?: (virtualMs: number, maxMs: number) => void): Promise<{ steps: number; stoppedBy: StoppedBy }> {
    const sim = this.sim;
    let steps = 0;
    let stoppedBy: StoppedBy = 'idle';
    onProgress?.(0, maxMs);
    for (;;) {
      const budget = Math.min(SLICE_STEPS, maxSteps - steps);
      const r = await sim.runUntilIdleAsync({ maxSteps: budget, maxTime: Math.max(0, maxMs - sim.clock.now()) });
      steps += r.steps;
      onProgress?.(sim.clock.now(), maxMs);
      if (r.idle) break;
      const next = sim.clock.nextDeadline();
      if (next === undefined) break;
      if (next > maxMs) {
        stoppedBy = 'max_time';
        break;
      }
      if (steps >= maxSteps) {
        stoppedBy = 'max_steps';
        break;
      }
    }
    return { steps, stoppedBy };
  }

  /**
   * The edges' descriptor guards summed (undefined: no edge has `max_descriptors`): accepts refused, upstream
   * EMFILE failures, episodes, accepts lost without a trace.
   */
  descriptors(): DescriptorCounts | undefined {
    let out: { acceptRefused: number; upstreamFailed: number; episodes: number; lostUntraced: number } | undefined;
    for (const e of this.topo.edges) {
      const t = this.host(e.name).descriptorTotals();
      if (t === undefined) continue;
      out ??= { acceptRefused: 0, upstreamFailed: 0, episodes: 0, lostUntraced: 0 };
      out.acceptRefused += t.acceptRefused;
      out.upstreamFailed += t.upstreamFailed;
      out.episodes += t.episodes;
      out.lostUntraced += t.lostUntraced;
    }
    return out;
  }

  /** What is left after the run: TCP connections in any host's table (at most 20 listed) and pending timers. */
  leftovers(): { quiescent: boolean; leftOpen: string[]; pendingTimers: number } {
    const netstat = this.sim.netstat();
    const pendingTimers = this.sim.clock.pendingTimers();
    const quiescent = netstat.tcp.length === 0 && pendingTimers === 0;
    const leftOpen = netstat.tcp.slice(0, 20).map((c) => `${c.host} ${c.local}>${c.remote} ${c.state}${c.app === 'open' ? ' (app open)' : ''}`);
    return { quiescent, leftOpen, pendingTimers };
  }
}

function linkParams(l: Omit<LinkSpec, 'between' | 'direction'>): Partial<LinkParams> {
  const p: { -readonly [K in keyof LinkParams]?: LinkParams[K] } = {};
  if (l.latency_ms !== undefined) p.latencyMs = l.latency_ms;
  if (l.jitter_ms !== undefined) p.jitterMs = l.jitter_ms;
  if (l.loss !== undefined) p.loss = l.loss;
  if (l.duplicate !== undefined) p.duplicate = l.duplicate;
  if (l.reorder !== undefined) p.reorder = l.reorder;
  if (l.bandwidth_bytes_per_ms !== undefined) p.bandwidthBytesPerMs = l.bandwidth_bytes_per_ms;
  if (l.queue_bytes !== undefined) p.queueBytes = l.queue_bytes;
  if (l.slice_max_bytes !== undefined) p.slicer = { minBytes: 1, maxBytes: l.slice_max_bytes };
  return p;
}
