/** Simulated TLS: the TLS model of src/core/tls-model.ts played over SimConns. Placeholder until implemented. */
import type { TlsPort } from '../ports.ts';
import type { SimHost } from './host.ts';

export function createSimTls(_host: SimHost): TlsPort {
  return {
    server() {
      throw new Error('sim TLS: not implemented yet');
    },
    client() {
      throw new Error('sim TLS: not implemented yet');
    },
  };
}
