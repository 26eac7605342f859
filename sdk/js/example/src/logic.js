// The logic of the `acme` flavor in JavaScript: ACME's internal registry, one repository
// namespace per team, `registry.acme.internal/<team>`. Pushes of a `latest`
// tag are denied. The same flavor as the Rust example of docs/writing-a-flavor.md.
// Plain JavaScript: `node --test` runs it without the host (test/logic.test.js);
// src/flavor.js exports it as the component.

import { Invalid, approve, deny, issue as kitIssue } from './flavorbox-kit.js';

const DOMAIN = 'registry.acme.internal';
const EXAMPLE = 'registry.acme.internal/ml';

// JSON Schema (draft 2020-12) of the config, shown by `flavorbox flavor describe`.
const SCHEMA = JSON.stringify({
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  title: 'ACME internal registry',
  type: 'object',
  additionalProperties: false,
  required: ['uri'],
  properties: {
    uri: { type: 'string', description: '`registry.acme.internal/<team>`', examples: [EXAMPLE] },
    team: {
      type: 'string',
      description: 'The team that owns the images. Derived from `uri`; when given, it must match.',
      examples: ['ml'],
    },
  },
});

/** A team name: 2 to 32 lowercase letters, digits and `-`, starting with a letter. */
function isTeam(s) {
  return /^[a-z][a-z0-9-]{1,31}$/.test(s);
}

/** A config issue whose message ends with a valid example. */
function issue(field, problem, example) {
  return kitIssue(field, `${problem}. An example of a valid value is: \`${example}\``);
}

export const logic = {
  metadata() {
    return {
      name: 'acme',
      displayName: 'ACME internal registry',
      description:
        "ACME's internal registry: every team pushes under its own namespace, `registry.acme.internal/<team>`, and `latest` tags are not accepted.",
      docsUrl: 'https://wiki.acme.internal/registry',
      configSchema: SCHEMA,
      // This flavor needs nothing from the host beyond `log`.
      capabilities: [],
    };
  },

  validateConfig(host, config) {
    let fields;
    try {
      fields = JSON.parse(config);
    } catch {
      fields = null;
    }
    if (
      fields === null ||
      typeof fields !== 'object' ||
      Array.isArray(fields) ||
      !Object.values(fields).every((v) => typeof v === 'string')
    ) {
      throw new Invalid([
        issue('', 'the config must be a JSON object of strings', '{"uri":"registry.acme.internal/ml"}'),
      ]);
    }
    const issues = [];
    for (const key of Object.keys(fields)) {
      if (key !== 'uri' && key !== 'team') {
        issues.push(issue(key, `unknown field \`${key}\`; this flavor accepts \`uri\` and \`team\``, EXAMPLE));
      }
    }
    // The host has already checked that `uri` is there and well formed.
    const uri = fields.uri ?? '';
    let team = null;
    if (uri.startsWith(`${DOMAIN}/`)) {
      const candidate = uri.slice(DOMAIN.length + 1);
      if (isTeam(candidate)) team = candidate;
      else
        issues.push(
          issue(
            'uri',
            `\`${candidate}\` is not a team: use 2 to 32 lowercase letters, digits and \`-\`, starting with a letter`,
            EXAMPLE,
          ),
        );
    } else {
      issues.push(issue('uri', `\`${uri}\` is not on the ACME registry: use \`${DOMAIN}/<team>\``, EXAMPLE));
    }
    const given = fields.team;
    if (given !== undefined && team !== null && given !== team) {
      issues.push(issue('team', `\`team\` \`${given}\` does not match the team of \`uri\`, \`${team}\``, team));
    }
    if (issues.length || team === null) throw new Invalid(issues);
    host.log('debug', `acme: config for team \`${team}\` is valid`);
    // The normalised config: the same `uri`, with `team` filled in.
    return { uri, team };
  },

  prepareImagePush(host, config, image, info) {
    host.log('info', `acme: checking the push of \`${image.name}\``);
    // The host fills in `latest` when a reference has no tag.
    if (image.tag === 'latest') {
      return deny(
        `ACME does not accept \`latest\` tags: tag the image with a version, e.g. \`${image.name}:1.0.0\``,
      );
    }
    // `info` is what the host read from the image (platform, labels, sizes,
    // ...), given only to a flavor that asks for it in its metadata
    // (`capabilities: [IMAGE_INFO]`); here it is always null. A rule on it,
    // with `IMAGE_INFO` and `platformName` imported from the kit:
    //   if (info && platformName(info.platform) !== 'linux/amd64') {
    //     return deny(`ACME runs linux/amd64 images, not ${platformName(info.platform)}`);
    //   }
    return approve([]);
  },
};
