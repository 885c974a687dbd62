/** Real TLS over NodeConns (node:tls). Placeholder until implemented. */
import type { TlsPort } from '../ports.ts';

export function createNodeTls(): TlsPort {
  return {
    server() {
      throw new Error('node TLS: not implemented yet');
    },
    client() {
      throw new Error('node TLS: not implemented yet');
    },
  };
}
