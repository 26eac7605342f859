// Flavorbox's helper for flavors written in JavaScript: the JS twin of the
// Rust `flavor-kit` crate and the Python `flavorbox_kit`.
//
// A flavor is an object with three methods written against plain values and
// a `host` handed in on every call, so its logic runs and is unit-tested with
// plain Node (`node --test`, with `FakeHost`). `exportFlavor` wires it to the
// `flavorbox:registry` WIT world (0.2, `wit/v0.2`; a flavor built against
// 0.1 works too): the module componentize-js builds exports the result under
// the name `flavor` (the WIT interface it implements):
//
//     import { exportFlavor } from './flavorbox-kit.js';
//     import * as host from 'flavorbox:registry/host@0.2.0';
//     export const flavor = exportFlavor(acme, host);
//
// A flavor that asks for the `IMAGE_INFO` capability in its metadata gets
// what the host read from the image as a fourth argument,
// `prepareImagePush(host, config, image, info)`: a plain object (see
// `imageInfo` for its fields), or `null` when the host has only the image's
// name (a dry run of an image it does not have). A `prepareImagePush` written
// for 0.1, without `info`, keeps working.
//
// The config rules every registry shares (ZenML's base fields `uri` and
// `default_repository`, the Docker reference grammar of path components, DNS
// limits) are here as conveniences, with the same messages as the Rust kit.
//
// No dependencies; copy this file next to your flavor (`flavorbox flavor new
// --lang js` does).

/** The capability to call `host.repositoryExists` (ask for it in the metadata). */
export const REPOSITORY_EXISTS = 'repository-exists';
/** The capability to receive the image's info in `prepareImagePush` (WIT 0.2). */
export const IMAGE_INFO = 'image-info';
/** Every capability a flavor may ask for. */
export const CAPABILITIES = [REPOSITORY_EXISTS, IMAGE_INFO];
/** The longest repository path (the name without the domain) Docker accepts. */
export const MAX_PATH_LEN = 255;
/** The longest DNS label (RFC 1035). */
export const MAX_LABEL_LEN = 63;
/** The longest DNS name (RFC 1035, without the trailing dot). */
export const MAX_HOST_LEN = 253;
/** What the path-component rule allows, for messages. */
export const PATH_COMPONENT_RULE =
  'lowercase letters and digits, optionally separated by `.`, `_`, `__` or `-`';
/** The fields of ZenML's base container-registry config, which every flavor accepts. */
export const BASE_FIELDS = ['uri', 'default_repository'];
/** An example `default_repository`. */
export const REPOSITORY_EXAMPLE = 'my-team/my-app';

/** One problem with a config: the field path (empty for the whole config) and what is wrong. */
export function issue(field, message) {
  return { field, message };
}

/** An issue whose message states `problem` and then shows a valid `example`. */
export function issueWithExample(field, problem, example) {
  return issue(field, withExample(field, problem, example));
}

/** Approve the push, showing these warnings. */
export function approve(warnings = []) {
  return { tag: 'approve', val: warnings };
}

/** Deny the push, for this reason. */
export function deny(reason) {
  return { tag: 'deny', val: reason };
}

/**
 * What the host read from the image itself, as `prepareImagePush` gets it:
 * `fields` over defaults, so a native test names only what its rule reads,
 * e.g. `imageInfo({ labels: { 'org.opencontainers.image.source': 'https://x' } })`.
 *
 * - `platform`: `{ os, architecture, variant }` (`variant` null unless the
 *   config names one); `platformName(info.platform)` is `linux/amd64`.
 * - `configDigest` (`sha256:...`), `created` (RFC 3339, or null),
 *   `ageSeconds` (or null), `user` (empty: root).
 * - `labels`: an object of key to value, without a prototype (so
 *   `info.labels.constructor` is undefined, as for any label not set).
 * - `exposedPorts`, `entrypoint`, `cmd`: arrays of strings; `envNames`: the
 *   names of the config's `Env` entries, never their values.
 * - `layerCount` (always the true count), `layers`: `[{ digest,
 *   compressedSize, uncompressedSize }]`, base first; `compressedSize`,
 *   `uncompressedSize`: sums in bytes, null when the host does not know them
 *   (numbers, not BigInts).
 * - `truncated`: the fields the host cut to its bounds (e.g. `['labels']`),
 *   so a policy can refuse an image it could not see whole.
 */
export function imageInfo(fields = {}) {
  const layers = fields.layers ?? [];
  return {
    configDigest: '',
    created: null,
    ageSeconds: null,
    user: '',
    exposedPorts: [],
    entrypoint: [],
    cmd: [],
    envNames: [],
    layerCount: layers.length,
    compressedSize: null,
    uncompressedSize: null,
    truncated: [],
    ...fields,
    platform: { os: 'linux', architecture: 'amd64', variant: null, ...fields.platform },
    labels: Object.assign(Object.create(null), fields.labels),
    layers,
  };
}

/** A platform as Docker writes it: `os/architecture`, then `/variant` when there is one. */
export function platformName(platform) {
  const base = `${platform.os}/${platform.architecture}`;
  return platform.variant ? `${base}/${platform.variant}` : base;
}

/**
 * The size of the image in bytes: compressed when the host knows it (what the
 * registry stores; a server measures it, a CLI's engine does not), else
 * uncompressed, else null.
 */
export function imageSize(info) {
  return info.compressedSize ?? info.uncompressedSize ?? null;
}

/** A WIT `u64` (a BigInt in componentize-js), or none, as a number or null. */
function num(value) {
  return value === undefined || value === null ? null : Number(value);
}

/** The WIT `image-info` record as componentize-js gives it, as `imageInfo` describes. */
function fromWitImageInfo(info) {
  if (info === undefined || info === null) return null;
  const p = info.platform;
  return {
    platform: { os: p.os, architecture: p.architecture, variant: p.variant ?? null },
    configDigest: info.configDigest,
    created: info.created ?? null,
    ageSeconds: num(info.ageSeconds),
    user: info.user,
    labels: Object.assign(
      Object.create(null),
      Object.fromEntries(info.labels.map((l) => [l.key, l.value])),
    ),
    exposedPorts: [...info.exposedPorts],
    entrypoint: [...info.entrypoint],
    cmd: [...info.cmd],
    envNames: [...info.envNames],
    layerCount: Number(info.layerCount),
    layers: info.layers.map((l) => ({
      digest: l.digest,
      compressedSize: num(l.compressedSize),
      uncompressedSize: num(l.uncompressedSize),
    })),
    compressedSize: num(info.compressedSize),
    uncompressedSize: num(info.uncompressedSize),
    truncated: [...info.truncated],
  };
}

/** Thrown by `validateConfig` to reject a config with every issue found. */
export class Invalid extends Error {
  constructor(issues) {
    super(issues.map((i) => `${i.field}: ${i.message}`).join('; '));
    this.issues = issues;
  }
}

/** Thrown by `host.repositoryExists` when the host cannot answer; `message` is the reason. */
export class LookupFailed extends Error {}

/** A host for native use that logs nothing and knows no repository. */
export const noHost = {
  log() {},
  repositoryExists() {
    throw new LookupFailed('no host');
  },
};

/**
 * A host for unit tests: answers `repositoryExists` with `answer` (a boolean,
 * or a string thrown as the reason it failed) and records what it was asked
 * and logged.
 */
export class FakeHost {
  constructor(answer = true) {
    this.answer = answer;
    this.asked = [];
    this.logs = [];
  }
  log(level, message) {
    this.logs.push([level, message]);
  }
  repositoryExists(repository) {
    this.asked.push(repository);
    if (typeof this.answer === 'string') throw new LookupFailed(this.answer);
    return this.answer;
  }
}

/**
 * The `flavor` export for a flavor's logic. `witHost` is the module
 * `flavorbox:registry/host@0.2.0` (componentize-js provides it); its
 * `repositoryExists` throws the reason as a string-carrying error, which
 * becomes `LookupFailed` here. `logic.prepareImagePush(host, config, image,
 * info)` gets `info` as `imageInfo` describes it, or null.
 */
export function exportFlavor(logic, witHost) {
  const host = {
    log(level, message) {
      witHost.log(level, String(message));
    },
    repositoryExists(repository) {
      try {
        return witHost.repositoryExists(repository);
      } catch (e) {
        throw new LookupFailed(String(e && e.payload !== undefined ? e.payload : e));
      }
    },
  };
  return {
    metadata() {
      const m = logic.metadata();
      return {
        name: m.name,
        displayName: m.displayName,
        description: m.description,
        docsUrl: m.docsUrl,
        logoUrl: m.logoUrl ?? '',
        configSchema: m.configSchema,
        capabilities: (m.capabilities ?? []).map((c) => {
          if (!CAPABILITIES.includes(c)) {
            throw new Error(
              `unknown capability ${JSON.stringify(c)} in the metadata: use REPOSITORY_EXISTS or IMAGE_INFO`,
            );
          }
          return c;
        }),
      };
    },
    validateConfig(config) {
      let result;
      try {
        result = logic.validateConfig(host, config);
      } catch (e) {
        if (e instanceof Invalid) {
          return { tag: 'err', val: e.issues.map((i) => issue(String(i.field), String(i.message))) };
        }
        // The engine running out of memory or stack: let the call fail (the
        // host reports the memory limit it enforced, or an empty rejection).
        if (!(e instanceof Error) || e.name === 'InternalError') throw e;
        // componentize-js cannot fail the call with a thrown error here (it
        // becomes an empty rejection): fail closed, with the message.
        return { tag: 'err', val: [issue('', `the flavor failed: ${report(e)}`)] };
      }
      return { tag: 'ok', val: typeof result === 'string' ? result : stringifySorted(result) };
    },
    // `info` is undefined when the component is built against WIT 0.1.
    prepareImagePush(config, image, info) {
      try {
        const reference = {
          domain: image.domain,
          path: image.path,
          tag: image.tag,
          digest: image.digest,
          name: image.name,
        };
        const decision = logic.prepareImagePush(host, config, reference, fromWitImageInfo(info));
        return decision ?? approve([]);
      } catch (e) {
        // Fail closed: no push when the flavor could not decide.
        return deny(`the flavor failed: ${report(e)}`);
      }
    },
  };
}

/**
 * Writes an exception that escaped the flavor to stderr (the stack too) and
 * returns its first line, bounded; the host escapes what it shows.
 */
function report(e) {
  let line;
  let text;
  try {
    line = e instanceof Error ? `${e.name}: ${e.message}` : `uncaught ${String(e)}`;
    text = e instanceof Error && e.stack ? `${line}\n${e.stack}` : line;
  } catch {
    line = 'uncaught exception';
    text = line;
  }
  console.error(text.length > 8192 ? `${text.slice(0, 8192)}...` : text);
  return line.length > 1024 ? `${line.slice(0, 1024)}...` : line;
}

/** JSON text of `value` with object keys sorted, like the Rust kit's output. */
export function stringifySorted(value) {
  if (Array.isArray(value)) return `[${value.map(stringifySorted).join(',')}]`;
  if (value && typeof value === 'object') {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${stringifySorted(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** A short name for the kind of a JSON value, for messages. */
export function jsonKind(value) {
  if (value === null) return 'null';
  if (typeof value === 'boolean') return 'a boolean';
  if (typeof value === 'number') return 'a number';
  if (typeof value === 'string') return 'a string';
  if (Array.isArray(value)) return 'an array';
  return 'an object';
}

/** Parses config text as a JSON object, or throws `Invalid` saying why not. */
export function parseConfig(config) {
  let value;
  try {
    value = JSON.parse(config);
  } catch (e) {
    throw new Invalid([issue('', `config is not valid JSON: ${e.message}`)]);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new Invalid([issue('', `config must be a JSON object, got ${jsonKind(value)}`)]);
  }
  return value;
}

/** `problem`, followed by a valid example of `field`, in ZenML's wording. */
export function withExample(field, problem, example) {
  const what = field === 'uri' ? 'URI' : field === '' ? 'config' : field;
  return `${problem.replace(/\.+$/, '')}. An example of a valid ${what} is: \`${example}\``;
}

/**
 * Normalises a registry URI the way the host does: surrounding whitespace and
 * trailing `/` removed, the domain lowercased, `index.docker.io` written as
 * `docker.io`.
 */
export function normalizeUri(uri) {
  uri = uri.trim().replace(/\/+$/, '');
  if (uri.includes('://')) return uri;
  const i = uri.indexOf('/');
  let domain = (i < 0 ? uri : uri.slice(0, i)).toLowerCase();
  const rest = i < 0 ? '' : uri.slice(i);
  if (domain === 'index.docker.io') domain = 'docker.io';
  return domain + rest;
}

/** A registry URI split into its domain (host with optional port) and path segments. */
export class RegistryUri {
  constructor(uri) {
    const parts = uri.split('/');
    this.uri = uri;
    this.domain = parts[0];
    this.segments = parts.slice(1);
  }
  splitPort() {
    const start = Math.max(this.domain.lastIndexOf(']'), 0);
    const i = this.domain.lastIndexOf(':');
    if (i < start) return [this.domain, null];
    return [this.domain.slice(0, i), this.domain.slice(i + 1)];
  }
  /** The domain without its port. */
  get host() {
    return this.splitPort()[0];
  }
  /** The port, when the domain has one. */
  get port() {
    return this.splitPort()[1];
  }
  /** The path after the domain, segments joined by `/`. */
  get path() {
    return this.segments.join('/');
  }
}

const alnum = (c) => (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

/** Whether `s` is a path component of the Docker reference grammar. */
export function isPathComponent(s) {
  if (!s || !alnum(s[0]) || !alnum(s[s.length - 1])) return false;
  let i = 0;
  while (i < s.length) {
    if (alnum(s[i])) {
      i += 1;
      continue;
    }
    const start = i;
    if (s[i] === '.') i += 1;
    else if (s[i] === '_') {
      i += 1;
      if (s[i] === '_') i += 1;
    } else if (s[i] === '-') {
      while (s[i] === '-') i += 1;
    } else return false;
    if (i === start || i >= s.length || !alnum(s[i])) return false;
  }
  return true;
}

/** One or more path components separated by `/`, at most `MAX_PATH_LEN` characters. */
export function isRepositoryPath(s) {
  return s.length > 0 && s.length <= MAX_PATH_LEN && s.split('/').every(isPathComponent);
}

/** 1 to 63 lowercase letters, digits and `-`, neither starting nor ending with `-`. */
export function isDnsLabel(s) {
  return (
    s.length > 0 &&
    s.length <= 63 &&
    !s.startsWith('-') &&
    !s.endsWith('-') &&
    [...s].every((c) => alnum(c) || c === '-')
  );
}

/** Records an issue unless `uri` has `lo` to `hi` path segments. */
export function expectSegments(field, uri, lo, hi, shape, example, issues) {
  const n = uri.segments.length;
  if (n >= lo && n <= hi) return true;
  const found =
    n === 0
      ? 'has no path'
      : n === 1
        ? `has 1 path segment (\`${uri.path}\`)`
        : `has ${n} path segments (\`${uri.path}\`)`;
  issues.push(
    issueWithExample(field, `\`${field}\` \`${uri.uri}\` must have ${shape}, but ${found}`, example),
  );
  return false;
}

/**
 * Records an issue for every segment after the first `skip` that `rule`
 * refuses (`rule` returns the problem, or null), then one if the path is too
 * long.
 */
export function checkSegments(field, uri, skip, example, issues, rule) {
  let ok = true;
  for (const segment of uri.segments.slice(skip)) {
    let problem;
    if (!segment) {
      problem = `\`${field}\` \`${uri.uri}\` has an empty path segment (\`//\`)`;
    } else {
      const refusal = rule(segment);
      if (refusal == null) continue;
      problem = `path segment \`${segment}\` of \`${field}\` \`${uri.uri}\` ${refusal}`;
    }
    ok = false;
    issues.push(issueWithExample(field, problem, example));
  }
  if (ok && uri.path.length > MAX_PATH_LEN) {
    ok = false;
    issues.push(
      issueWithExample(field, `the path of \`${field}\` is longer than ${MAX_PATH_LEN} characters`, example),
    );
  }
  return ok;
}

/** `isPathComponent` as a rule for `checkSegments`. */
export function pathComponent(segment) {
  return isPathComponent(segment) ? null : `is not valid in an image name: use ${PATH_COMPONENT_RULE}`;
}

/** Records an issue for every segment that is not a path component. */
export function checkPathComponents(field, uri, example, issues) {
  return checkSegments(field, uri, 0, example, issues, pathComponent);
}

/** A config being validated: the parsed object and every issue found so far. */
export class ConfigCheck {
  constructor(config, allowed) {
    this.map = parseConfig(config);
    this.issues = [];
    // Sorted, like the Rust kit (a sorted map), so issues come in one order.
    for (const key of Object.keys(this.map).sort()) {
      if (!allowed.includes(key)) {
        this.issues.push(issue(key, `unknown field \`${key}\`; this flavor accepts: ${allowed.join(', ')}`));
      }
    }
  }

  /**
   * Reads the required `uri`, normalises it and writes it back, and checks
   * what every registry URI must satisfy; returns it split, or null with an issue.
   */
  uri(example) {
    const raw = this.map.uri;
    if (raw === undefined || raw === null) {
      this.issues.push(issue('uri', `\`uri\` is required, e.g. "${example}"`));
      return null;
    }
    if (typeof raw !== 'string') {
      this.issues.push(issue('uri', `\`uri\` must be a string, got ${jsonKind(raw)}; e.g. "${example}"`));
      return null;
    }
    if (!raw.trim()) {
      this.issues.push(issue('uri', `\`uri\` must not be empty, e.g. "${example}"`));
      return null;
    }
    const uri = normalizeUri(raw);
    if (uri.includes('://')) {
      const scheme = uri.split('://')[0];
      this.issue('uri', `\`uri\` \`${uri}\` must not include a scheme (\`${scheme}://\`)`, example);
      return null;
    }
    if (/\s/.test(uri)) {
      this.issue('uri', `\`uri\` \`${uri}\` must not contain whitespace`, example);
      return null;
    }
    const parsed = new RegistryUri(uri);
    if (!parsed.domain) {
      this.issue('uri', `\`uri\` \`${uri}\` has no registry domain`, example);
      return null;
    }
    const host = parsed.host;
    if (!host.startsWith('[')) {
      if (host.length > MAX_HOST_LEN) {
        this.issue(
          'uri',
          `the registry host of \`uri\` is ${host.length} characters long; a DNS name has at most ${MAX_HOST_LEN}`,
          example,
        );
        return null;
      }
      const label = host.split('.').find((l) => l.length > MAX_LABEL_LEN);
      if (label !== undefined) {
        this.issue(
          'uri',
          `the label \`${label}\` of the registry host is ${label.length} characters long; a DNS label has at most ${MAX_LABEL_LEN}`,
          example,
        );
        return null;
      }
    }
    this.map.uri = uri;
    return parsed;
  }

  /** Reads an optional string field (`null` counts as absent). */
  optionalStr(field, example) {
    const value = this.map[field];
    if (value === undefined || value === null) return null;
    if (typeof value === 'string') return value;
    this.issues.push(issue(field, `\`${field}\` must be a string, got ${jsonKind(value)}; e.g. "${example}"`));
    return null;
  }

  /** Checks ZenML's optional `default_repository`. */
  defaultRepository(uri) {
    const repository = this.optionalStr('default_repository', REPOSITORY_EXAMPLE);
    if (repository === null) return null;
    if (!isRepositoryPath(repository)) {
      this.issue(
        'default_repository',
        `\`default_repository\` \`${repository}\` is not a valid repository name: use ${PATH_COMPONENT_RULE}, separated by \`/\``,
        REPOSITORY_EXAMPLE,
      );
      return null;
    }
    const prefix = uri ? uri.path : '';
    const total = prefix ? prefix.length + 1 + repository.length : repository.length;
    if (total > MAX_PATH_LEN) {
      this.issue(
        'default_repository',
        `\`default_repository\` appended to the path of \`uri\` (\`${prefix}/...\`) makes an image path of ${total} characters; Docker allows at most ${MAX_PATH_LEN}`,
        REPOSITORY_EXAMPLE,
      );
      return null;
    }
    return repository;
  }

  /** Records an issue on `field` stating `problem` and showing `example`. */
  issue(field, problem, example) {
    this.issues.push(issueWithExample(field, problem, example));
  }

  /** Sets a field of the normalised config. */
  set(field, value) {
    this.map[field] = value;
  }

  /** The normalised config, or throws `Invalid` with every issue. */
  finish() {
    if (this.issues.length) throw new Invalid(this.issues);
    return this.map;
  }
}

/**
 * The whole `validateConfig` of a flavor with ZenML's base fields: parse,
 * reject unknown fields, normalise the URI, run `check` (the flavor's own
 * rules) on it.
 */
export function validateUriConfig(config, example, check) {
  const cfg = new ConfigCheck(config, BASE_FIELDS);
  const uri = cfg.uri(example);
  if (uri) check(uri, cfg.issues);
  cfg.defaultRepository(uri);
  return cfg.finish();
}

/** The `prepareImagePush` of a flavor with nothing to check. */
export function approvePush(host, flavor, image, _info = null) {
  host.log('debug', `${flavor}: nothing to check before pushing \`${image.name}\``);
  return approve([]);
}

/**
 * The JSON Schema (draft 2020-12) of a config with `uri`,
 * `default_repository` and `extra` optional properties, no others.
 */
export function configSchema(title, uriDescription, uriExamples, extra = {}) {
  return JSON.stringify({
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title,
    type: 'object',
    additionalProperties: false,
    required: ['uri'],
    properties: {
      uri: { type: 'string', description: uriDescription, examples: uriExamples },
      default_repository: {
        type: 'string',
        description:
          "Repository to push images to when none is given (ZenML's `default_repository`): lowercase path components separated by `/`, appended to `uri`.",
        examples: [REPOSITORY_EXAMPLE],
      },
      ...extra,
    },
  });
}
