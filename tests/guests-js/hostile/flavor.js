// A JavaScript flavor that misbehaves on request, for tests/tests/languages.rs.
// `validateConfig` reads `{"mode": "..."}` and does what the mode says; the
// same modes as the Rust hostile guest (tests/guests/hostile) where
// JavaScript can express them.

import * as witHost from 'flavorbox:registry/host@0.2.0';
import * as kit from './flavorbox-kit.js';

let calls = 0;

function recurse(n) {
  return recurse(n + 1) + 1;
}

function probe() {
  const seen = {};
  // StarlingMonkey has no filesystem, socket or process API: only `fetch`
  // (over wasi:http) reaches out.
  seen.has_process = typeof globalThis.process !== 'undefined';
  seen.has_require = typeof globalThis.require !== 'undefined';
  seen.wall_clock_secs = Math.floor(Date.now() / 1000);
  try {
    const pending = fetch('http://127.0.0.1:9/');
    seen.http = 'pending';
    pending.then(
      () => {},
      () => {},
    );
  } catch (e) {
    seen.http = `refused: ${e}`;
  }
  return seen;
}

const logic = {
  metadata() {
    return {
      name: 'hostile-js',
      displayName: 'Hostile JavaScript test flavor',
      description: 'Misbehaves on request',
      docsUrl: 'https://example.invalid/hostile',
      configSchema: '{"type":"object"}',
      capabilities: [kit.REPOSITORY_EXISTS],
    };
  },
  validateConfig(host, config) {
    calls += 1;
    const mode = JSON.parse(config).mode ?? 'ok';
    switch (mode) {
      case 'ok':
        return config;
      case 'calls':
        return { calls };
      case 'loop': {
        let x = 0;
        for (;;) x += 1;
      }
      case 'alloc': {
        const hoard = [];
        for (;;) hoard.push(new Uint8Array(1 << 20).fill(1));
      }
      case 'recurse':
        return { n: recurse(0) };
      case 'raise':
        throw new Error(`hostile js throws on purpose \x1b[2J\nerror: forged line ${'x'.repeat(100000)}`);
      case 'big-output':
        return { pad: 'x'.repeat(4 << 20) };
      case 'probe':
        return probe();
      case 'print':
        console.log('hello from stdout');
        console.error('hello from stderr');
        return config;
      case 'lookup':
        try {
          return { exists: host.repositoryExists('team/app') };
        } catch (e) {
          throw new kit.Invalid([kit.issue('lookup', e.message)]);
        }
      default:
        throw new kit.Invalid([kit.issue('mode', `unknown mode \`${mode}\``)]);
    }
  },
  prepareImagePush() {
    return kit.approve([]);
  },
};

export const flavor = kit.exportFlavor(logic, witHost);
