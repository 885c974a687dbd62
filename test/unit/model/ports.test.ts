import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatOriginUri,
  formatPortRange,
  formatProtocol,
  parseHostPort,
  parseHostname,
  parseOriginUri,
  parsePortRange,
  parseProtocol,
  portFromNumber,
  rangesOverlap,
  type Parsed,
} from '../../../src/model/ports.ts';
import { parseCidr, parseIpLiteral } from '../../../src/model/ip.ts';

const value = <T>(r: Parsed<T>): T => {
  assert.ok(r.ok, `expected success, got ${r.ok ? '' : r.code}`);
  return r.value;
};
const code = <T>(r: Parsed<T>): string => {
  assert.ok(!r.ok, 'expected a failure');
  return r.code;
};

void describe('port ranges', () => {
  void it('reads a single port and a range', () => {
    assert.deepEqual(value(parsePortRange('22', 'E_CONFIG_SCHEMA')), { start: 22, end: 22 });
    assert.deepEqual(value(parsePortRange('1000-2000', 'E_CONFIG_SCHEMA')), { start: 1000, end: 2000 });
  });
  void it('reads A-A as the single port A', () => {
    assert.deepEqual(value(parsePortRange('443-443', 'E_CONFIG_SCHEMA')), { start: 443, end: 443 });
    assert.equal(formatPortRange({ start: 443, end: 443 }), '443');
  });
  void it('gives port zero, reversed range and the caller syntax code their own codes', () => {
    assert.equal(code(parsePortRange('0', 'E_CONFIG_PROTOCOL')), 'E_CONFIG_PORT_ZERO');
    assert.equal(code(parsePortRange('0-10', 'E_CONFIG_PROTOCOL')), 'E_CONFIG_PORT_ZERO');
    assert.equal(code(parsePortRange('2000-1000', 'E_CONFIG_PROTOCOL')), 'E_CONFIG_PORT_RANGE_ORDER');
    for (const bad of ['', '-1', '65536', '1-65536', '99999999999999999999', ' 22', '22 ', '2e3', '0x10', '1-2-3', '+5']) {
      assert.equal(code(parsePortRange(bad, 'E_CONFIG_PROTOCOL')), 'E_CONFIG_PROTOCOL', bad);
    }
    assert.deepEqual(value(parsePortRange('65535', 'E_CONFIG_SCHEMA')), { start: 65535, end: 65535 });
  });
  void it('validates numeric ports', () => {
    assert.deepEqual(value(portFromNumber(22)), { start: 22, end: 22 });
    assert.equal(code(portFromNumber(0)), 'E_CONFIG_PORT_ZERO');
    assert.equal(code(portFromNumber(65536)), 'E_CONFIG_SCHEMA');
    assert.equal(code(portFromNumber(22.5)), 'E_CONFIG_SCHEMA');
    assert.equal(code(portFromNumber(-1)), 'E_CONFIG_SCHEMA');
  });
  void it('detects overlap of inclusive ranges', () => {
    assert.equal(rangesOverlap({ start: 1, end: 10 }, { start: 10, end: 20 }), true);
    assert.equal(rangesOverlap({ start: 1, end: 9 }, { start: 10, end: 20 }), false);
  });
});

void describe('protocol', () => {
  void it('reads tcp and udp with ports or ranges', () => {
    assert.deepEqual(value(parseProtocol('tcp/22')), { protocol: 'tcp', ports: { start: 22, end: 22 } });
    assert.deepEqual(value(parseProtocol('udp/1000-2000')), { protocol: 'udp', ports: { start: 1000, end: 2000 } });
    assert.equal(formatProtocol('udp', { start: 1000, end: 2000 }), 'udp/1000-2000');
  });
  void it('rejects other schemes and shapes with E_CONFIG_PROTOCOL', () => {
    for (const bad of ['TCP/22', 'sctp/22', 'tcp', 'tcp/', 'tcp:22', 'tcp/22/x', 'http/80', 'tcp/a']) {
      assert.equal(code(parseProtocol(bad)), 'E_CONFIG_PROTOCOL', bad);
    }
    assert.equal(code(parseProtocol('tcp/0')), 'E_CONFIG_PORT_ZERO');
    assert.equal(code(parseProtocol('tcp/10-5')), 'E_CONFIG_PORT_RANGE_ORDER');
  });
});

void describe('origin_direct URIs', () => {
  void it('reads IPv4, bracketed IPv6 and port ranges', () => {
    assert.deepEqual(value(parseOriginUri('tcp://192.0.2.1:22')), { protocol: 'tcp', host: '192.0.2.1', family: 'IPv4', ports: { start: 22, end: 22 } });
    assert.deepEqual(value(parseOriginUri('udp://[2001:DB8::1]:53')), { protocol: 'udp', host: '2001:db8::1', family: 'IPv6', ports: { start: 53, end: 53 } });
    assert.deepEqual(value(parseOriginUri('tcp://192.0.2.1:3000-4000')).ports, { start: 3000, end: 4000 });
  });
  void it('prints what it reads', () => {
    for (const s of ['tcp://192.0.2.1:22', 'udp://[2001:db8::1]:53', 'tcp://10.0.0.1:3000-4000']) {
      assert.equal(formatOriginUri(value(parseOriginUri(s))), s);
    }
  });
  void it('rejects unbracketed IPv6, hostnames and malformed URIs with 11002', () => {
    for (const bad of [
      'tcp://2001:db8::1:443',
      'tcp://::1:5',
      'tcp://origin.example.com:22',
      'tcp://192.0.2.1',
      'tcp://[192.0.2.1]:22',
      'tcp://127.1:22',
      'tcp://[fe80::1%eth0]:22',
      'http://192.0.2.1:80',
      '192.0.2.1:22',
      'tcp://192.0.2.1:22/path',
      'tcp://192.0.2.1:65536',
    ]) {
      assert.equal(code(parseOriginUri(bad)), 'E_ORIGIN_ADDRESS_INVALID', bad);
    }
    assert.equal(code(parseOriginUri('tcp://192.0.2.1:0')), 'E_CONFIG_PORT_ZERO');
    assert.equal(code(parseOriginUri('tcp://192.0.2.1:9-5')), 'E_CONFIG_PORT_RANGE_ORDER');
  });
});

void describe('IP literals, CIDRs, host:port and hostnames', () => {
  void it('takes dotted-quad IPv4 and IPv6 without zone only', () => {
    assert.equal(parseIpLiteral('127.0.0.1')?.family, 'IPv4');
    assert.equal(parseIpLiteral('::1')?.family, 'IPv6');
    for (const bad of ['127.1', '0x7f.0.0.1', '127.000.0.1', 'fe80::1%eth0', 'localhost', '']) assert.equal(parseIpLiteral(bad), undefined, bad);
  });
  void it('reads CIDR blocks and bare IPs as full-length prefixes', () => {
    assert.equal(parseCidr('10.0.0.0/8')?.prefix, 8);
    assert.equal(parseCidr('::1')?.prefix, 128);
    for (const bad of ['10.0.0.0/33', '::/129', '10.0.0.0/', '10.0.0.0/a', 'x/8']) assert.equal(parseCidr(bad), undefined, bad);
  });
  void it('reads DNS server addresses with and without a port', () => {
    assert.deepEqual(value(parseHostPort('127.0.0.1:5353', 53)), { address: { address: '127.0.0.1', family: 'IPv4' }, port: 5353 });
    assert.equal(value(parseHostPort('[::1]:5353', 53)).port, 5353);
    assert.equal(value(parseHostPort('::1', 53)).port, 53);
    assert.equal(code(parseHostPort('dns.example:53', 53)), 'E_CONFIG_CIDR');
    assert.equal(code(parseHostPort('127.0.0.1:0', 53)), 'E_CONFIG_PORT_ZERO');
    assert.equal(code(parseHostPort('127.0.0.1:1-2', 53)), 'E_CONFIG_SCHEMA');
  });
  void it('normalises hostnames and rejects non-names', () => {
    assert.equal(value(parseHostname('SSH.Example.COM.', 'E_CONFIG_SCHEMA')), 'ssh.example.com');
    assert.equal(value(parseHostname('_minecraft._tcp.example.com', 'E_ORIGIN_DNS_INVALID')), '_minecraft._tcp.example.com');
    for (const bad of ['', '.', 'a..b', '-a.com', 'a-.com', 'a b.com', '192.0.2.1', 'x'.repeat(64) + '.com', `${'a.'.repeat(127)}ab`]) {
      assert.equal(code(parseHostname(bad, 'E_ORIGIN_DNS_INVALID')), 'E_ORIGIN_DNS_INVALID', bad);
    }
  });
});
