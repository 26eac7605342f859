// The `default` flavor in JavaScript, for the conformance table: any registry
// URI with a valid port and lowercase path components (guest-flavors/default).

import * as witHost from 'flavorbox:registry/host@0.2.0';
import * as kit from './flavorbox-kit.js';

const EXAMPLE = 'registry.example.com/team';

function checkUri(uri, issues) {
  const port = uri.port;
  if (port !== null) {
    let problem = null;
    if (!/^[0-9]+$/.test(port)) problem = 'is not a number';
    else if (!(Number(port) >= 1 && Number(port) <= 65535)) problem = 'is not a TCP port (1 to 65535)';
    if (problem) {
      issues.push(kit.issueWithExample('uri', `the port \`${port}\` of \`uri\` \`${uri.uri}\` ${problem}`, 'localhost:5000'));
    }
  }
  kit.checkPathComponents('uri', uri, EXAMPLE, issues);
}

const logic = {
  metadata() {
    return {
      name: 'default',
      displayName: 'Default',
      description: 'Any Docker/OCI container registry reachable by URI (JavaScript).',
      docsUrl: 'https://docs.zenml.io/stacks/stack-components/container-registries/default',
      configSchema: kit.configSchema('Default container registry', 'Registry URI: `host[:port]` with an optional path.', [
        'localhost:5000',
        EXAMPLE,
      ]),
      capabilities: [],
    };
  },
  validateConfig(host, config) {
    return kit.validateUriConfig(config, EXAMPLE, checkUri);
  },
  prepareImagePush(host, config, image) {
    return kit.approvePush(host, 'default', image);
  },
};

export const flavor = kit.exportFlavor(logic, witHost);
