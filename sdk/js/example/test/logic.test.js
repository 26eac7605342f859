// Native unit tests of the acme flavor's logic: `node --test`.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FakeHost, Invalid, approve, noHost } from '../src/flavorbox-kit.js';
import { logic } from '../src/logic.js';

test('fills in the team', () => {
  const config = logic.validateConfig(noHost, '{"uri":"registry.acme.internal/ml"}');
  assert.deepEqual(config, { uri: 'registry.acme.internal/ml', team: 'ml' });
});

test('refuses another registry and a wrong team', () => {
  assert.throws(
    () => logic.validateConfig(noHost, '{"uri":"registry.example.com/ml","team":"x"}'),
    (e) => e instanceof Invalid && e.issues.map((i) => i.field).join() === 'uri',
  );
  assert.throws(
    () => logic.validateConfig(noHost, '{"uri":"registry.acme.internal/ml","team":"cv"}'),
    (e) => e instanceof Invalid && e.issues.map((i) => i.field).join() === 'team',
  );
});

test('denies latest', () => {
  const host = new FakeHost();
  const image = { domain: 'registry.acme.internal', path: 'ml/trainer', tag: 'latest', name: 'registry.acme.internal/ml/trainer' };
  const decision = logic.prepareImagePush(host, '{}', image);
  assert.equal(decision.tag, 'deny');
  assert.match(decision.val, /`latest`/);
  assert.deepEqual(logic.prepareImagePush(host, '{}', { ...image, tag: '1' }), approve([]));
});
