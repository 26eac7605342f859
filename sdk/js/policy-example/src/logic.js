// The logic of the `acme-policy` flavor in JavaScript: any registry, with
// ACME's image policy on every push. It asks the host for what it read from
// the image (`IMAGE_INFO`) and denies an image without an
// `org.opencontainers.image.source` label, one not built for linux/amd64, or
// one larger than the config's `max_size_mib` (512 by default).

import { ConfigCheck, IMAGE_INFO, approve, deny, imageSize, issue, platformName } from './flavorbox-kit.js';

/** The label every image must carry: where its source lives. */
const SOURCE_LABEL = 'org.opencontainers.image.source';
/** The one platform ACME runs. */
const PLATFORM = 'linux/amd64';
const DEFAULT_MAX_SIZE_MIB = 512;
const MAX_SIZE_MIB_LIMIT = 2 ** 20;
const MIB = 1024 * 1024;

// JSON Schema (draft 2020-12) of the config, shown by `flavorbox flavor describe`.
const SCHEMA = JSON.stringify({
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  title: 'ACME image policy',
  type: 'object',
  additionalProperties: false,
  required: ['uri'],
  properties: {
    uri: { type: 'string', description: 'The registry.', examples: ['registry.acme.internal/ml'] },
    max_size_mib: {
      type: 'integer',
      minimum: 1,
      maximum: MAX_SIZE_MIB_LIMIT,
      default: DEFAULT_MAX_SIZE_MIB,
      description: 'The largest image this registry accepts, in MiB.',
    },
  },
});

/** Every rule `info` breaks, in words for the user. */
export function policyProblems(info, maxSizeMib) {
  const problems = [];
  if (!(info.labels[SOURCE_LABEL] ?? '').trim()) {
    // The host passes at most 64 labels and says when it cut some.
    const seen = info.truncated.includes('labels') ? ' among the labels the host read' : '';
    problems.push(
      `it has no \`${SOURCE_LABEL}\` label${seen} (add \`LABEL ${SOURCE_LABEL}=<URL of its source>\` to its Dockerfile)`,
    );
  }
  const platform = platformName(info.platform);
  if (platform !== PLATFORM) problems.push(`it is built for ${platform}, not ${PLATFORM}`);
  // Compressed when the host knows it (what the registry stores), else uncompressed.
  const size = imageSize(info);
  if (size === null) problems.push('the host could not measure its size');
  else if (size > maxSizeMib * MIB) {
    problems.push(
      `it is ${(size / MIB).toFixed(1)} MiB, more than the ${maxSizeMib} MiB this registry accepts`,
    );
  }
  return problems;
}

export const logic = {
  metadata() {
    return {
      name: 'acme-policy',
      displayName: 'ACME image policy',
      description:
        "Any registry, with ACME's image policy: an `org.opencontainers.image.source` label, linux/amd64, and a size cap.",
      docsUrl: 'https://wiki.acme.internal/registry/policy',
      configSchema: SCHEMA,
      // Without this the host never reads the image: `info` is null.
      capabilities: [IMAGE_INFO],
    };
  },

  validateConfig(host, config) {
    const cfg = new ConfigCheck(config, ['uri', 'max_size_mib']);
    // The host has already checked `uri`; the size cap is ours.
    cfg.uri('registry.acme.internal/ml');
    const size = cfg.map.max_size_mib ?? DEFAULT_MAX_SIZE_MIB;
    if (Number.isInteger(size) && size >= 1 && size <= MAX_SIZE_MIB_LIMIT) {
      cfg.set('max_size_mib', size);
    } else {
      cfg.issues.push(
        issue(
          'max_size_mib',
          `\`max_size_mib\` must be a whole number of MiB from 1 to ${MAX_SIZE_MIB_LIMIT}, e.g. ${DEFAULT_MAX_SIZE_MIB}`,
        ),
      );
    }
    return cfg.finish();
  },

  prepareImagePush(host, config, image, info) {
    const maxSizeMib = JSON.parse(config).max_size_mib ?? DEFAULT_MAX_SIZE_MIB;
    // null: the host has only the name (a dry run of an image it does not
    // have). The push itself asks again, with the info.
    if (info === null) {
      return approve([
        `\`${image.name}\` was checked by name only: its label, platform and size are checked when it is pushed`,
      ]);
    }
    const problems = policyProblems(info, maxSizeMib);
    if (problems.length) {
      return deny(`\`${image.name}\` breaks ACME's image policy: ${problems.join('; ')}`);
    }
    host.log('info', `acme-policy: \`${image.name}\` meets the image policy`);
    return approve([]);
  },
};
