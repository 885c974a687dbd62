/**
 * The view of `serve --workers` over its workers' edges (src/cli/workers-edge.ts): live state summed over the
 * workers' latest snapshots; a worker that exits keeps its counters (not its gauges, listeners, open instances).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventLog } from '../../../src/streams/events.ts';
import { WorkersEdge, type WorkerSnapshot } from '../../../src/cli/workers-edge.ts';
import { engineStates } from '../../../src/edge/engine-view.ts';
import { engineState } from '../../../src/api/metrics.ts';
import type { TcpStats } from '../../../src/machines/tcp-env.ts';
import type { UdpStats } from '../../../src/machines/udp-flow.ts';

function tcpStats(total: number, active: number, byStatus: Record<string, number>): TcpStats {
  return {
    downstream_cx_total: total, downstream_cx_active: active, downstream_cx_no_app: 0, downstream_cx_proxy_refused: 0,
    downstream_cx_ip_blocked: 0, downstream_cx_refused_node_cap: 0, downstream_cx_refused_app_cap: 0,
    downstream_cx_refused_client_connections: 0, downstream_cx_refused_client_rate: 0, upstream_cx_total: total,
    upstream_cx_connect_fail: 0, upstream_cx_connect_timeout: 0, upstream_cx_resolve_fail: 0, idle_timeout: 0,
    drain_deadline: 0, tls_client_handshakes: 0, tls_client_failed: 0, tls_origin_handshakes: 0, tls_origin_failed: 0,
    closed_by_status: byStatus,
  };
}

function udpStats(flows: number): UdpStats {
  return {
    udp_flows_total: flows, udp_flows_active: 1, udp_flows_refused_cap: 0, udp_flows_refused_client_connections: 0,
    udp_flows_refused_client_rate: 0, udp_dgrams_no_app: 0, udp_dgrams_ip_blocked: 0, udp_dgrams_oversize: 0,
    udp_dgrams_queue_full: 0, udp_dgrams_from_unexpected_source: 0, udp_spp_reply_invalid: 0,
    udp_dgrams_downstream: flows * 2, udp_dgrams_upstream: flows * 3,
  };
}

function snapshot(n: number, opts: { paused?: boolean; limit?: number } = {}): WorkerSnapshot {
  return {
    listeners: [{ protocol: 'tcp', host: '127.0.0.1', port: 9000, app: 'a' }],
    tcp: { stats: tcpStats(10 * n, n, { '200': 10 * n }), open: [['a', '"established"', n], ['', '"accepted"', 1]] },
    udp: { stats: udpStats(n), open: [['u', '"active"', 1]] },
    suppressed: [['conn.closed.520', n]],
    descriptors: { limit: opts.limit ?? 1024, reserve: 32, acceptRefused: n, upstreamFailed: 0, episodes: 1, paused: opts.paused ?? false },
  };
}

void describe('WorkersEdge', () => {
  it('sums the workers, keeps an exited worker counters but not its gauges, and refills one stats object', () => {
    const view = new WorkersEdge({ events: new EventLog(), apply: () => Promise.reject(new Error('unused')), config: () => undefined });
    const tcp = view.tcp.stats;
    view.update(1, snapshot(2));
    view.update(2, snapshot(3, { paused: true, limit: 512 }));
    assert.equal(view.tcp.stats, tcp, 'the same object: readers hold it');
    assert.equal(tcp.downstream_cx_total, 50);
    assert.equal(tcp.downstream_cx_active, 5);
    assert.deepEqual(tcp.closed_by_status, { '200': 50 });
    assert.equal(view.udp.stats.udp_dgrams_upstream, 15);
    assert.equal(view.listeners().length, 2, 'one listener per worker');
    assert.deepEqual(engineStates(view).tcp, { active: 7, states: { established: 5, accepted: 2 } });
    const st = engineState(view);
    assert.deepEqual([st.tcp.open, st.tcp.byApp.get('a'), st.tcp.byApp.get(''), st.udp.open, st.listeners.tcp], [7, 5, 2, 2, 2]);
    assert.equal(view.logLimit.suppressed, 5);
    assert.deepEqual(view.descriptors(), { limit: 512, reserve: 32, acceptRefused: 5, upstreamFailed: 0, episodes: 2, paused: true });

    // Worker 2 exits: its counters stay, its open connections, listeners and pause go.
    view.exited(2);
    assert.equal(tcp.downstream_cx_total, 50);
    assert.equal(tcp.downstream_cx_active, 2);
    assert.equal(view.udp.stats.udp_flows_active, 1);
    assert.equal(view.listeners().length, 1);
    assert.deepEqual(engineStates(view).tcp, { active: 3, states: { established: 2, accepted: 1 } });
    assert.equal(view.logLimit.suppressedByCause.get('conn.closed.520'), 5);
    assert.deepEqual(view.descriptors(), { limit: 1024, reserve: 32, acceptRefused: 5, upstreamFailed: 0, episodes: 2, paused: false });

    // Its replacement counts from 0, on top of what the exited worker counted.
    view.update(2, snapshot(1));
    assert.equal(tcp.downstream_cx_total, 60);
    assert.equal(tcp.downstream_cx_active, 3);
    assert.deepEqual(tcp.closed_by_status, { '200': 60 });
    assert.equal(view.reporting, 2);
  });
});
