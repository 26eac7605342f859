// Native tests of the kit's WIT adapter (`exportFlavor`): what a flavor gets
// from the host and what the host gets back, with the values shaped as
// componentize-js passes them (records as objects, `u64` as BigInt, a `none`
// as undefined). Run in this directory: `node --test flavorbox-kit.test.js`
// (tests/tests/all/languages.rs does).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { IMAGE_INFO, REPOSITORY_EXISTS, approve, deny, exportFlavor, imageInfo, imageSize, platformName } from './flavorbox-kit.js';

const witHost = { log() {}, repositoryExists: () => true };
const IMAGE = { domain: 'registry.example.com', path: 'ml/app', tag: '1', digest: undefined, name: 'registry.example.com/ml/app' };

/** `image-info` as componentize-js lifts it. */
const WIT_INFO = {
  platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
  configDigest: `sha256:${'c'.repeat(64)}`,
  created: '2026-01-02T03:04:05Z',
  ageSeconds: 86400n,
  user: 'app',
  labels: [
    { key: 'a', value: '1' },
    { key: 'org.opencontainers.image.source', value: 'https://x' },
  ],
  exposedPorts: ['8080/tcp'],
  entrypoint: ['/bin/app'],
  cmd: ['--serve'],
  envNames: ['PATH', 'TOKEN'],
  layerCount: 200,
  layers: [{ digest: `sha256:${'1'.repeat(64)}`, compressedSize: undefined, uncompressedSize: 5000000000n }],
  compressedSize: undefined,
  uncompressedSize: 5000000000n,
  truncated: ['layers'],
};

function flavor(capabilities, prepareImagePush) {
  return exportFlavor(
    {
      metadata: () => ({ name: 'f', displayName: 'F', description: 'd', docsUrl: 'https://d', configSchema: '{}', capabilities }),
      validateConfig: (host, config) => config,
      prepareImagePush,
    },
    witHost,
  );
}

test('the info reaches the flavor as a plain object', () => {
  const seen = [];
  const exported = flavor([IMAGE_INFO], (host, config, image, info) => {
    seen.push([image, info]);
    return info === null ? deny('no') : approve([platformName(info.platform)]);
  });
  assert.deepEqual(exported.metadata().capabilities, ['image-info']);
  assert.deepEqual(exported.prepareImagePush('{}', IMAGE, WIT_INFO), approve(['linux/arm64/v8']));
  const [image, info] = seen[0];
  assert.equal(image.name, 'registry.example.com/ml/app');
  assert.equal(info.labels['org.opencontainers.image.source'], 'https://x');
  assert.equal(info.labels.constructor, undefined, 'labels have no prototype');
  assert.deepEqual({ ...info, labels: { ...info.labels } }, {
    platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
    configDigest: `sha256:${'c'.repeat(64)}`,
    created: '2026-01-02T03:04:05Z',
    ageSeconds: 86400,
    user: 'app',
    labels: { a: '1', 'org.opencontainers.image.source': 'https://x' },
    exposedPorts: ['8080/tcp'],
    entrypoint: ['/bin/app'],
    cmd: ['--serve'],
    envNames: ['PATH', 'TOKEN'],
    layerCount: 200,
    layers: [{ digest: `sha256:${'1'.repeat(64)}`, compressedSize: null, uncompressedSize: 5000000000 }],
    compressedSize: null,
    uncompressedSize: 5000000000,
    truncated: ['layers'],
  });
  assert.equal(imageSize(info), 5000000000);
  // A check by name alone (`none`, undefined): the flavor gets null.
  assert.deepEqual(exported.prepareImagePush('{}', IMAGE, undefined), deny('no'));
});

test('a flavor written for 0.1 keeps working', () => {
  const exported = flavor([REPOSITORY_EXISTS], (host, config, image) => approve([image.name]));
  assert.deepEqual(exported.metadata().capabilities, ['repository-exists']);
  assert.deepEqual(exported.prepareImagePush('{}', IMAGE), approve(['registry.example.com/ml/app']));
});

test('an unknown capability fails the metadata with the fix', () => {
  assert.throws(() => flavor(['image_info'], () => approve()).metadata(), /unknown capability "image_info"/);
});

test('imageInfo fills in what a test leaves out', () => {
  const info = imageInfo({ labels: { a: 'b' }, layers: [{ digest: 'sha256:a', compressedSize: 1, uncompressedSize: 2 }], compressedSize: 1 });
  assert.equal(platformName(info.platform), 'linux/amd64');
  assert.equal(info.layerCount, 1);
  assert.equal(info.labels.a, 'b');
  assert.equal(imageSize(info), 1);
  assert.equal(imageSize(imageInfo()), null);
  assert.equal(platformName(imageInfo({ platform: { architecture: 'arm64', variant: 'v8' } }).platform), 'linux/arm64/v8');
});
