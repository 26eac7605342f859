// Native unit tests of the acme-policy flavor's logic: `node --test`.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FakeHost, IMAGE_INFO, Invalid, approve, imageInfo, noHost } from '../src/flavorbox-kit.js';
import { logic } from '../src/logic.js';

const IMAGE = { domain: 'registry.acme.internal', path: 'ml/trainer', tag: '1', name: 'registry.acme.internal/ml/trainer' };
const CONFIG = '{"uri":"registry.acme.internal/ml","max_size_mib":512}';

/** An image that meets the policy, with `fields` changed. */
function info(fields = {}) {
  return imageInfo({
    labels: { 'org.opencontainers.image.source': 'https://git.acme.internal/ml' },
    uncompressedSize: 80 * 1024 * 1024,
    ...fields,
  });
}

const push = (i) => logic.prepareImagePush(new FakeHost(), CONFIG, IMAGE, i);

test('asks for the image info', () => {
  assert.deepEqual(logic.metadata().capabilities, [IMAGE_INFO]);
});

test('fills in the size cap and refuses a bad one', () => {
  const config = logic.validateConfig(noHost, '{"uri":"registry.acme.internal/ml"}');
  assert.equal(config.max_size_mib, 512);
  for (const bad of ['0', '"big"', '1.5', 'true']) {
    assert.throws(
      () => logic.validateConfig(noHost, `{"uri":"registry.acme.internal/ml","max_size_mib":${bad}}`),
      (e) => e instanceof Invalid && e.issues.map((i) => i.field).join() === 'max_size_mib',
    );
  }
});

test('approves an image that meets the policy', () => {
  assert.deepEqual(push(info()), approve([]));
});

test('denies every broken rule at once', () => {
  const decision = push(
    info({ labels: {}, platform: { architecture: 'arm64', variant: 'v8' }, uncompressedSize: 600 * 1024 * 1024 }),
  );
  assert.equal(decision.tag, 'deny');
  assert.match(decision.val, /no `org\.opencontainers\.image\.source` label/);
  assert.match(decision.val, /built for linux\/arm64\/v8, not linux\/amd64/);
  assert.match(decision.val, /600\.0 MiB, more than the 512 MiB/);
});

test('an unmeasured or truncated image is denied', () => {
  assert.match(push(info({ uncompressedSize: null })).val, /could not measure/);
  assert.match(push(info({ labels: { a: 'b' }, truncated: ['labels'] })).val, /among the labels the host read/);
});

test('a check by name alone warns', () => {
  const decision = push(null);
  assert.equal(decision.tag, 'approve');
  assert.match(decision.val[0], /checked by name only/);
});
