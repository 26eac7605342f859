// The `github` flavor in JavaScript, for the conformance table: ghcr.io,
// GHE.com and the legacy docker.pkg.github.com (guest-flavors/github).

import * as witHost from 'flavorbox:registry/host@0.2.0';
import * as kit from './flavorbox-kit.js';

const GHCR = 'ghcr.io';
const LEGACY = 'docker.pkg.github.com';
const EXAMPLE = 'ghcr.io/my-organization';
const LEGACY_EXAMPLE = 'docker.pkg.github.com/my-organization/my-repository';
const MAX_LOGIN_LEN = 39;

function registryOf(host) {
  if (host === GHCR) return 'ghcr';
  if (host === LEGACY) return 'legacy';
  if (host.startsWith('containers.') && host.endsWith('.ghe.com')) {
    const sub = host.slice('containers.'.length, -'.ghe.com'.length);
    if (kit.isDnsLabel(sub)) return 'ghe';
  }
  return null;
}

function webHostHint(host) {
  if (host === 'github.com' || host === 'www.github.com') {
    return `; \`${host}\` is GitHub's website, its container registry is \`${GHCR}\``;
  }
  if (host.endsWith('.ghe.com')) {
    const sub = host.slice(0, -'.ghe.com'.length);
    if (sub !== 'containers' && kit.isDnsLabel(sub)) {
      return `; \`${host}\` is the GHE.com website, its container registry is \`containers.${host}\``;
    }
  }
  return '';
}

function checkLogin(login, lowercaseUri) {
  if (/[A-Z]/.test(login)) {
    return `the GitHub login \`${login}\` must be lowercase in an image path (\`${lowercaseUri}\`)`;
  }
  const valid =
    login.length >= 1 && login.length <= MAX_LOGIN_LEN && login.split('-').every((run) => /^[a-z0-9]+$/.test(run));
  if (valid) return null;
  return `\`${login}\` is not a valid GitHub user or organization: use 1 to ${MAX_LOGIN_LEN} lowercase letters and digits, optionally separated by single hyphens, not starting or ending with one`;
}

function checkRepository(repository, lowercaseUri) {
  if (/[A-Z]/.test(repository)) {
    return `the repository \`${repository}\` must be lowercase in an image path (\`${lowercaseUri}\`)`;
  }
  if (kit.isPathComponent(repository)) return null;
  return `\`${repository}\` is not a valid repository in an image path: use ${kit.PATH_COMPONENT_RULE}`;
}

function checkUri(uri, issues) {
  const host = uri.host;
  let registry = registryOf(host);
  if (registry !== null) {
    if (uri.port !== null) {
      issues.push(
        kit.issueWithExample(
          'uri',
          `\`uri\` \`${uri.uri}\` must not include a port (\`:${uri.port}\`): GitHub's registry is reached as \`${host}\``,
          EXAMPLE,
        ),
      );
    }
  } else {
    issues.push(
      kit.issueWithExample(
        'uri',
        `\`uri\` \`${uri.uri}\` is not a GitHub Container Registry URI: its domain must be \`${GHCR}\`, not \`${uri.domain}\` (or \`containers.<subdomain>.ghe.com\` for a GHE.com enterprise, or the legacy \`${LEGACY}\`)${webHostHint(host)}`,
        EXAMPLE,
      ),
    );
    registry = 'ghcr';
  }
  const example = { ghcr: EXAMPLE, ghe: `${host}/my-organization`, legacy: LEGACY_EXAMPLE }[registry];
  const hostName = { ghcr: GHCR, ghe: host, legacy: LEGACY }[registry];
  const [count, shape] =
    registry === 'legacy'
      ? [2, `exactly an owner and a repository after \`${LEGACY}\``]
      : [1, `exactly one GitHub user or organization after \`${hostName}\``];
  if (!kit.expectSegments('uri', uri, count, count, shape, example, issues)) return;
  const lowercase = `${hostName}/${uri.path.toLowerCase()}`;
  const login = checkLogin(uri.segments[0], lowercase);
  if (login) issues.push(kit.issueWithExample('uri', login, example));
  if (registry === 'legacy') {
    const repo = checkRepository(uri.segments[1], lowercase);
    if (repo) issues.push(kit.issueWithExample('uri', repo, example));
  }
}

const logic = {
  metadata() {
    return {
      name: 'github',
      displayName: 'GitHub Container Registry',
      description: 'GitHub Container Registry (JavaScript).',
      docsUrl: 'https://docs.zenml.io/stacks/stack-components/container-registries/github',
      configSchema: kit.configSchema('GitHub container registry', '`ghcr.io/<user-or-org>`', [EXAMPLE]),
      capabilities: [],
    };
  },
  validateConfig(host, config) {
    return kit.validateUriConfig(config, EXAMPLE, checkUri);
  },
  prepareImagePush(host, config, image) {
    return kit.approvePush(host, 'github', image);
  },
};

export const flavor = kit.exportFlavor(logic, witHost);
