// The `aws` flavor in JavaScript, for the conformance table: Amazon ECR
// private registries, the region derived from the URI, and a warning before a
// push to a repository that does not exist (asked through
// `repository-exists`); the rules of guest-flavors/aws.

import * as witHost from 'flavorbox:registry/host@0.2.0';
import * as kit from './flavorbox-kit.js';

const EXAMPLE = '715803424592.dkr.ecr.us-east-1.amazonaws.com';
const EXAMPLE_ACCOUNT = '715803424592';
const REGION_EXAMPLE = 'us-east-1';
const FIELDS = ['uri', 'default_repository', 'region'];

const PARTITIONS = [
  { id: 'aws', name: 'commercial AWS', prefixes: ['us', 'eu', 'ap', 'sa', 'ca', 'me', 'af', 'il', 'mx'], pattern: '`us-east-1`, `eu-central-1`, ...', exampleRegion: 'us-east-1' },
  { id: 'aws-us-gov', name: 'AWS GovCloud (US)', prefixes: ['us-gov'], pattern: '`us-gov-...`', exampleRegion: 'us-gov-west-1' },
  { id: 'aws-cn', name: 'China', prefixes: ['cn'], pattern: '`cn-...`', exampleRegion: 'cn-north-1' },
  { id: 'aws-iso', name: 'AWS ISO', prefixes: ['us-iso'], pattern: '`us-iso-...`', exampleRegion: 'us-iso-east-1' },
  { id: 'aws-iso-b', name: 'AWS ISOB', prefixes: ['us-isob'], pattern: '`us-isob-...`', exampleRegion: 'us-isob-east-1' },
  { id: 'aws-iso-e', name: 'AWS ISOE', prefixes: ['eu-isoe'], pattern: '`eu-isoe-...`', exampleRegion: 'eu-isoe-west-1' },
  { id: 'aws-iso-f', name: 'AWS ISOF', prefixes: ['us-isof'], pattern: '`us-isof-...`', exampleRegion: 'us-isof-south-1' },
  { id: 'aws-eusc', name: 'AWS European Sovereign Cloud', prefixes: ['eusc-de'], pattern: '`eusc-de-...`', exampleRegion: 'eusc-de-east-1' },
];

const DOMAINS = [
  { suffix: 'amazonaws.com', partitions: ['aws', 'aws-us-gov'], dualStack: false, services: ['dotted'] },
  { suffix: 'amazonaws.com.cn', partitions: ['aws-cn'], dualStack: false, services: ['dotted'] },
  { suffix: 'on.aws', partitions: ['aws', 'aws-us-gov'], dualStack: true, services: ['dashed'] },
  { suffix: 'on.amazonwebservices.com.cn', partitions: ['aws-cn'], dualStack: true, services: ['dashed', 'dotted'] },
  { suffix: 'amazonaws.eu', partitions: ['aws-eusc'], dualStack: false, services: ['dotted'] },
  { suffix: 'c2s.ic.gov', partitions: ['aws-iso'], dualStack: false, services: ['dotted'] },
  { suffix: 'sc2s.sgov.gov', partitions: ['aws-iso-b'], dualStack: false, services: ['dotted'] },
  { suffix: 'cloud.adc-e.uk', partitions: ['aws-iso-e'], dualStack: false, services: ['dotted'] },
  { suffix: 'csp.hci.ic.gov', partitions: ['aws-iso-f'], dualStack: false, services: ['dotted'] },
];

const FIPS_REGIONS = ['us-east-1', 'us-east-2', 'us-west-1', 'us-west-2', 'us-gov-east-1', 'us-gov-west-1'];
const ECR_PUBLIC_HOSTS = ['public.ecr.aws', 'ecr-public.aws.com'];

const FORMS =
  '`<account>.dkr.ecr.<region>.amazonaws.com` (commercial regions and GovCloud), `<account>.dkr.ecr-fips.<region>.amazonaws.com` (FIPS, in us-east-1, us-east-2, us-west-1, us-west-2, us-gov-east-1, us-gov-west-1), `<account>.dkr-ecr[-fips].<region>.on.aws` (dual-stack), `<account>.dkr.ecr.<cn-region>.amazonaws.com.cn` (China), `<account>.dkr.ecr.<cn-region>.on.amazonwebservices.com.cn` or `<account>.dkr-ecr.<cn-region>.on.amazonwebservices.com.cn` (China dual-stack), `<account>.dkr.ecr.<eusc-region>.amazonaws.eu` (European Sovereign Cloud) and `<account>.dkr.ecr.<iso-region>.c2s.ic.gov`, `.sc2s.sgov.gov`, `.cloud.adc-e.uk` or `.csp.hci.ic.gov` (ISO regions)';

const label = (service, fips) => (service === 'dotted' ? 'dkr.ecr' : 'dkr-ecr') + (fips ? '-fips' : '');

class Refusal extends Error {
  constructor(problem, example) {
    super(problem);
    this.problem = problem;
    this.example = example;
  }
}

const isAccount = (s) => /^[0-9]{12}$/.test(s);
const partitionById = (id) => PARTITIONS.find((p) => p.id === id);

function partitionOf(s) {
  const i = s.lastIndexOf('-');
  if (i < 0) return null;
  const j = s.lastIndexOf('-', i - 1);
  if (j < 0) return null;
  const [prefix, word, number] = [s.slice(0, j), s.slice(j + 1, i), s.slice(i + 1)];
  if (!/^[0-9]+$/.test(number) || !/^[a-z]+$/.test(word)) return null;
  return PARTITIONS.find((p) => p.prefixes.includes(prefix)) ?? null;
}

function domainExample(domain) {
  const region = partitionById(domain.partitions[0])?.exampleRegion ?? REGION_EXAMPLE;
  return `${EXAMPLE_ACCOUNT}.${label(domain.services[0], false)}.${region}.${domain.suffix}`;
}

function domainOf(partition, dualStack) {
  const serving = DOMAINS.filter((d) => d.partitions.includes(partition.id));
  return serving.find((d) => d.dualStack === dualStack) ?? serving.find((d) => !d.dualStack) ?? null;
}

function suggestion(account, partition, region, dualStack, fips) {
  account = isAccount(account) ? account : EXAMPLE_ACCOUNT;
  fips = fips && FIPS_REGIONS.includes(region);
  const domain = domainOf(partition, dualStack);
  if (!domain) return EXAMPLE;
  return `${account}.${label(domain.services[0], fips)}.${region}.${domain.suffix}`;
}

function wrongService(domain, service, fips) {
  const given = label(service, fips);
  const expected = label(domain.services[0], fips);
  if (domain.dualStack) {
    return `\`.${domain.suffix}\` is a dual-stack domain, where the service label is \`${expected}\`, not \`${given}\``;
  }
  return `\`${given}\` is the dual-stack service label, used with \`.on.aws\` (and \`.on.amazonwebservices.com.cn\` in China); with \`.${domain.suffix}\` it is \`${expected}\``;
}

function wrongPartition(domain, partition, region) {
  const parts = domain.partitions.map(partitionById);
  const onlyFor = `\`.${domain.suffix}\` is only for the ${parts.map((p) => p.name).join(' and ')} regions (${parts.map((p) => p.pattern).join('; ')})`;
  const right = domainOf(partition, domain.dualStack);
  if (!right) return onlyFor;
  if (right.dualStack === domain.dualStack) {
    return `${onlyFor}; the ${partition.name} region \`${region}\` is served from \`.${right.suffix}\``;
  }
  return `${onlyFor}; the ${partition.name} region \`${region}\` has no dual-stack ECR domain: use \`${label(right.services[0], false)}\` with \`.${right.suffix}\``;
}

function notEcr(host) {
  let best = null;
  for (const d of DOMAINS) {
    const needle = `.${d.suffix}.`;
    const i = host.indexOf(needle);
    if (i >= 0 && (best === null || d.suffix.length >= best[0].suffix.length)) {
      best = [d, host.slice(i + needle.length - 1)];
    }
  }
  if (best) {
    const [domain, tail] = best;
    return new Refusal(
      `\`${host}\` is not an Amazon ECR registry: the host must end in \`.${domain.suffix}\`, but \`${tail}\` follows it`,
      domainExample(domain),
    );
  }
  return new Refusal(`\`${host}\` is not an Amazon ECR registry: it must be one of ${FORMS}`, EXAMPLE);
}

const SHAPES = {
  'dkr.ecr': ['dotted', false],
  'dkr.ecr-fips': ['dotted', true],
  'dkr-ecr': ['dashed', false],
  'dkr-ecr-fips': ['dashed', true],
};

function parseHost(host) {
  const domain = DOMAINS.find((d) => host.endsWith(`.${d.suffix}`));
  if (!domain) throw notEcr(host);
  const rest = host.slice(0, host.length - domain.suffix.length - 1);
  const parts = rest.split('.');
  const shape = parts.length === 3 || parts.length === 4 ? SHAPES[parts.slice(1, -1).join('.')] : undefined;
  // `dkr-ecr` as two labels (`a.dkr-ecr.x.y`) is no shape: check the label count.
  const labels = shape ? (shape[0] === 'dotted' ? 4 : 3) : 0;
  if (!shape || parts.length !== labels) {
    throw new Refusal(
      `\`${host}\` is not an Amazon ECR registry: before \`.${domain.suffix}\` it must be \`<12-digit account id>.${label(domain.services[0], false)}.<region>\`, not \`${rest}\``,
      domainExample(domain),
    );
  }
  const [account, region] = [parts[0], parts[parts.length - 1]];
  const [service, fips] = shape;
  const problems = [];
  if (!account) problems.push('the 12-digit AWS account id is missing');
  else if (!isAccount(account)) problems.push(`\`${account}\` is not a 12-digit AWS account id`);
  if (!domain.services.includes(service)) problems.push(wrongService(domain, service, fips));
  const partition = partitionOf(region);
  if (!partition) {
    problems.push(
      `\`${region}\` is not an AWS region (such as \`us-east-1\`, \`us-gov-west-1\`, \`cn-north-1\` or \`eusc-de-east-1\`)`,
    );
  } else if (!domain.partitions.includes(partition.id)) {
    problems.push(wrongPartition(domain, partition, region));
  }
  if (fips && partition && !FIPS_REGIONS.includes(region)) {
    problems.push(
      `Amazon ECR offers no FIPS endpoint in \`${region}\` (only in ${FIPS_REGIONS.join(', ')}): use \`${label(service, false)}\` instead of \`${label(service, true)}\``,
    );
  }
  if (!problems.length) return region;
  const example = partition
    ? suggestion(account, partition, region, domain.dualStack || service === 'dashed', fips)
    : domainExample(domain);
  throw new Refusal(`\`uri\` \`${host}\` is not a valid Amazon ECR registry: ${problems.join('; ')}`, example);
}

function parseDomain(uri) {
  const port = uri.port;
  if (port !== null) {
    const host = uri.host;
    let example;
    try {
      parseHost(host);
      example = host;
    } catch (refusal) {
      example = refusal.example;
    }
    throw new Refusal(`\`uri\` \`${uri.domain}\` must not have a port (\`:${port}\`)`, example);
  }
  return parseHost(uri.host);
}

const ecrPublicNote = (host) =>
  `\`${host}\` is Amazon ECR Public, which is not a private registry: the \`aws\` flavor takes ECR private registries only (\`<account>.dkr.ecr.<region>.amazonaws.com\`); use the \`default\` flavor for ECR Public (e.g. \`public.ecr.aws/<alias>\`)`;

function checkUri(uri, issues) {
  const isPublic = ECR_PUBLIC_HOSTS.includes(uri.host);
  if (uri.segments.length) {
    let message = `Property \`uri\` can not contain a \`/\`. An example of a valid URI is: \`${EXAMPLE}\``;
    if (isPublic) message += `. ${ecrPublicNote(uri.host)}`;
    issues.push(kit.issue('uri', message));
    if (isPublic) return null;
  } else if (isPublic) {
    issues.push(kit.issueWithExample('uri', ecrPublicNote(uri.host), EXAMPLE));
    return null;
  }
  try {
    const region = parseDomain(uri);
    return uri.segments.length ? null : region;
  } catch (refusal) {
    issues.push(kit.issueWithExample('uri', refusal.problem, refusal.example));
    return null;
  }
}

const logic = {
  metadata() {
    return {
      name: 'aws',
      displayName: 'Amazon Elastic Container Registry (ECR)',
      description: `Amazon ECR private registries: ${FORMS} (JavaScript).`,
      docsUrl: 'https://docs.zenml.io/stacks/stack-components/container-registries/aws',
      configSchema: kit.configSchema('Amazon ECR container registry', 'The ECR private registry, without any `/`.', [EXAMPLE], {
        region: { type: 'string', examples: [REGION_EXAMPLE] },
      }),
      capabilities: [kit.REPOSITORY_EXISTS],
    };
  },
  validateConfig(host, config) {
    const cfg = new kit.ConfigCheck(config, FIELDS);
    const uri = cfg.uri(EXAMPLE);
    const derived = uri ? checkUri(uri, cfg.issues) : null;
    const repository = cfg.defaultRepository(null);
    if (repository !== null && repository.length < 2) {
      cfg.issue(
        'default_repository',
        `\`default_repository\` \`${repository}\` is too short: Amazon ECR repository names have at least 2 characters`,
        kit.REPOSITORY_EXAMPLE,
      );
    }
    const given = cfg.optionalStr('region', REGION_EXAMPLE);
    if (given !== null && derived !== null && given !== derived) {
      cfg.issue(
        'region',
        `\`region\` \`${given}\` does not match the region of \`uri\`, \`${derived}\`: remove \`region\` (it is derived from \`uri\`) or set it to \`${derived}\``,
        derived,
      );
    } else if (given !== null && derived === null && !partitionOf(given)) {
      cfg.issue('region', `\`region\` \`${given}\` is not an AWS region`, REGION_EXAMPLE);
    }
    if (derived !== null) cfg.set('region', derived);
    return cfg.finish();
  },
  prepareImagePush(host, config, image) {
    let fields = {};
    try {
      const parsed = JSON.parse(config);
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) fields = parsed;
    } catch {
      fields = {};
    }
    const uri = typeof fields.uri === 'string' ? fields.uri : image.domain;
    let region = typeof fields.region === 'string' ? fields.region : null;
    if (region === null) {
      try {
        region = parseDomain(new kit.RegistryUri(uri));
      } catch {
        region = null;
      }
    }
    const repository = image.path;
    let exists;
    try {
      exists = host.repositoryExists(repository);
    } catch (e) {
      const reason = e.message;
      host.log('info', `could not check whether repository \`${repository}\` exists on \`${uri}\`: ${reason}`);
      return kit.approve([
        `Could not check whether Amazon ECR repository \`${repository}\` exists on \`${uri}\`: ${reason}. If it does not exist, the push will fail.`,
      ]);
    }
    if (exists) {
      host.log('info', `repository \`${repository}\` exists on \`${uri}\``);
      return kit.approve([]);
    }
    host.log('info', `repository \`${repository}\` does not exist on \`${uri}\`; pushing anyway`);
    const regionArg = region ? ` --region ${region}` : '';
    return kit.approve([
      `Amazon ECR repository \`${repository}\` does not exist on \`${uri}\`. ECR needs a repository to be created before images are pushed to it, e.g. with \`aws ecr create-repository --repository-name ${repository}${regionArg}\`. The push will probably fail.`,
    ]);
  },
};

export const flavor = kit.exportFlavor(logic, witHost);
