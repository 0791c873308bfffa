// Which network addresses an outbound webhook may reach. Webhook URLs are set
// by operators, not admins, so without this an operator could make the server
// POST to its own API, to cloud metadata (169.254.169.254) or to anything else
// on the private network behind it (SSRF). The policy is checked twice: on the
// URL when a rule is saved (literal IPs) and at delivery on the addresses DNS
// actually returns, because a name can resolve somewhere else later.
//
// Pure: no DNS, no sockets. BlockList is an in-memory matcher.
import { BlockList, isIP } from 'node:net';

const RANGES: [string, number, 'ipv4' | 'ipv6', string][] = [
  ['0.0.0.0', 8, 'ipv4', 'unspecified ("this network")'],
  ['10.0.0.0', 8, 'ipv4', 'private'],
  ['100.64.0.0', 10, 'ipv4', 'carrier-grade NAT'],
  ['127.0.0.0', 8, 'ipv4', 'loopback'],
  ['169.254.0.0', 16, 'ipv4', 'link-local'],
  ['172.16.0.0', 12, 'ipv4', 'private'],
  ['192.0.0.0', 24, 'ipv4', 'reserved (IETF protocol assignments)'],
  ['192.0.2.0', 24, 'ipv4', 'reserved (documentation)'],
  ['192.88.99.0', 24, 'ipv4', 'reserved (6to4 relay)'],
  ['192.168.0.0', 16, 'ipv4', 'private'],
  ['198.18.0.0', 15, 'ipv4', 'reserved (benchmarking)'],
  ['198.51.100.0', 24, 'ipv4', 'reserved (documentation)'],
  ['203.0.113.0', 24, 'ipv4', 'reserved (documentation)'],
  ['224.0.0.0', 4, 'ipv4', 'multicast'],
  ['240.0.0.0', 4, 'ipv4', 'reserved (and broadcast)'],
  // Checked before the IPv6 ranges below that contain it, so ::1 and :: get
  // their own names rather than "IPv4-compatible".
  ['::1', 128, 'ipv6', 'loopback'],
  ['::', 128, 'ipv6', 'unspecified'],
  // Forms that carry an IPv4 address inside IPv6: they can reach whatever
  // that IPv4 address reaches, so refuse them outright.
  ['::ffff:0:0', 96, 'ipv6', 'IPv4-mapped'],
  ['::', 96, 'ipv6', 'IPv4-compatible'],
  ['64:ff9b::', 96, 'ipv6', 'NAT64'],
  ['64:ff9b:1::', 48, 'ipv6', 'NAT64 (local use)'],
  ['2002::', 16, 'ipv6', '6to4'],
  ['2001::', 32, 'ipv6', 'Teredo'],
  ['100::', 64, 'ipv6', 'discard-only'],
  ['2001::', 23, 'ipv6', 'reserved (IETF protocol assignments)'],
  ['2001:db8::', 32, 'ipv6', 'reserved (documentation)'],
  ['fc00::', 7, 'ipv6', 'private (unique local)'],
  ['fe80::', 10, 'ipv6', 'link-local'],
  ['fec0::', 10, 'ipv6', 'site-local'],
  ['ff00::', 8, 'ipv6', 'multicast'],
];

const LISTS = RANGES.map(([net, prefix, type, reason]) => {
  const list = new BlockList();
  list.addSubnet(net, prefix, type);
  return { list, type, reason };
});

/** Why a literal IP address is not a public unicast address; null when it is (or is not an IP at all). */
export function forbiddenAddressReason(address: string): string | null {
  const ip = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  const family = isIP(ip);
  if (family === 0) return null;
  const type = family === 4 ? 'ipv4' : 'ipv6';
  // Same family only: BlockList matches IPv4 addresses against IPv4-mapped
  // IPv6 ranges too, which would make ::ffff:0:0/96 swallow every IPv4 address.
  for (const l of LISTS) if (l.type === type && l.list.check(ip, type)) return l.reason;
  return null;
}

/** Names that resolve to this machine whatever DNS says. */
function isLocalName(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/\.$/, '');
  return h === 'localhost' || h.endsWith('.localhost');
}

/**
 * What is wrong with a webhook URL, as a sentence for the operator; null when
 * it is acceptable. Only what the URL itself shows: a host name is checked
 * again at delivery, on the addresses it resolves to.
 */
export function webhookUrlProblem(raw: string, allowPrivate: boolean): string | null {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'webhookUrl must be an absolute http(s) URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'webhookUrl must be an absolute http(s) URL';
  // fetch-style clients refuse such URLs, and the password would end up in logs.
  if (url.username !== '' || url.password !== '') {
    return 'webhookUrl must not contain credentials (user:password@): they are never sent. Put a secret token in the URL path or query string instead (custom headers are not supported yet)';
  }
  if (allowPrivate) return null;
  // URL has already normalised the host: 0x7f000001, 2130706433 and 127.1 are all 127.0.0.1 here.
  const reason = isLocalName(url.hostname) ? 'loopback' : forbiddenAddressReason(url.hostname);
  if (reason !== null) {
    return `webhookUrl must point at a public address: ${url.hostname} is ${reason}. Private targets are refused unless the server runs with LATENTWATCH_WEBHOOK_ALLOW_PRIVATE=true`;
  }
  return null;
}

/** A URL safe to log: no credentials, query string or fragment (tokens live there). */
export function redactUrl(raw: string): string {
  try {
    const url = new URL(raw);
    return `${url.protocol}//${url.host}${url.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}
