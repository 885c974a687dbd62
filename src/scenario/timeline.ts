/**
 * The timeline: each step is a timer on the virtual clock at its `at`, set before the run starts (so steps at the
 * same time run in file order), and performed by whoever owns what it touches: client steps by `Clients`, DNS
 * queries by `Resolutions`, faults and link changes on the simulator, restarts, reloads and API writes by `Origins`
 * and `Edges`. A step that throws is a failure at `/timeline/<i>/<action>`. A `connect` or `datagram` to a `resolved`
 * id whose resolution has no address yet (no answer, an error, NXDOMAIN, no record) is not performed: a failure at
 * `/timeline/<i>/<action>/resolved` says why.
 */
import { type Clients } from './clients.ts';
import { type Edges } from './edges.ts';
import { type Origins } from './origins.ts';
import { type Resolutions } from './resolutions.ts';
import { type Fail } from './results.ts';
import { formatIpPort } from './schema.ts';
import { type ScenarioFile, type TimelineStep } from './types.ts';
import { type World } from './world.ts';

/** What the timeline's steps act on. */
export interface TimelineActors {
  readonly world: World;
  readonly clients: Clients;
  readonly origins: Origins;
  readonly edges: Edges;
  readonly resolutions: Resolutions;
  readonly fail: Fail;
}

const stepPath = (i: number, action: string): string => `/timeline/${i}/${action}`;

/** Sets a timer for every step of `sc.timeline`; the steps run as the simulator reaches them. */
export function scheduleTimeline(sc: ScenarioFile, actors: TimelineActors): void {
  const { world, fail } = actors;
  sc.timeline.forEach((step, i) => {
    world.sim.clock.setTimer(step.at - world.sim.clock.now(), () => {
      runStep(actors, step, i).catch((e: unknown) => {
        const action = Object.keys(step).find((k) => k !== 'at') ?? '';
        fail(stepPath(i, action), 'the step runs', e instanceof Error ? e.message : String(e));
      });
    });
  });
}

/**
 * Where a `connect` or `datagram` step sends: its `to`, or the first address its `resolved` id answered, on `port`
 * (undefined, after a failure at `path/resolved`, when that resolution has no address).
 */
function destination(d: { id: string; to?: string | undefined; resolved?: string | undefined; port?: number | undefined }, resolutions: Resolutions, fail: Fail, path: string): string | undefined {
  if (d.to !== undefined) return d.to;
  const r = resolutions.address(d.resolved!);
  if (r.ok) {
    resolutions.dialled(d.resolved!, d.id);
    return formatIpPort(r.address, d.port!);
  }
  fail(`${path}/resolved`, `an address answered to resolve "${d.resolved!}"`, r.why);
  return undefined;
}

async function runStep({ world, clients, origins, edges, resolutions, fail }: TimelineActors, step: TimelineStep, i: number): Promise<void> {
  const sim = world.sim;
  if ('connect' in step) {
    const c = step.connect;
    const to = destination(c, resolutions, fail, stepPath(i, 'connect'));
    if (to !== undefined) clients.open(c.id, c.client, to, c.from, c.half_open ?? false, undefined, c.tls);
  } else if ('send' in step) {
    clients.send(step.send.id, step.send);
  } else if ('end' in step) {
    clients.end(step.end.id);
  } else if ('reset' in step) {
    clients.reset(step.reset.id);
  } else if ('load' in step) {
    clients.load(step.load);
  } else if ('partition' in step) {
    sim.partition(step.partition.a, step.partition.b, { direction: step.partition.direction ?? 'both' });
  } else if ('heal' in step) {
    sim.heal(step.heal.a, step.heal.b);
  } else if ('link' in step) {
    world.link(step.link);
  } else if ('crash' in step) {
    sim.crash(step.crash.host);
    edges.crashed(step.crash.host);
  } else if ('restart' in step) {
    const name = step.restart.host;
    if (world.host(name).up) return;
    sim.restart(name);
    if (world.topo.origins.some((o) => o.name === name)) await origins.listen(name);
    if (world.topo.edges.some((e) => e.name === name)) await edges.start(name, stepPath(i, 'restart'));
  } else if ('reload' in step) {
    await edges.reload(step.reload, stepPath(i, 'reload'));
  } else if ('dns' in step) {
    world.setDns(step.dns);
  } else if ('datagram' in step) {
    // A flow keeps the destination of its first step (later steps of the id name the same `to` or `resolved`).
    const first = clients.flowDestination(step.datagram.id);
    const to = first ?? destination(step.datagram, resolutions, fail, stepPath(i, 'datagram'));
    if (to !== undefined) clients.datagram({ ...step.datagram, to });
  } else if ('api' in step) {
    await edges.api(step.api, i, step.at, stepPath(i, 'api'));
  } else if ('resolve' in step) {
    resolutions.resolve(step.resolve);
  }
}
