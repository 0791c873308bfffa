// The webhook address policy: which literal addresses and URLs are refused.
import { describe, expect, it } from 'vitest';
import { forbiddenAddressReason, redactUrl, webhookUrlProblem } from '../../server/domain/net-policy.js';

describe('forbiddenAddressReason', () => {
  it('names every non-public range, IPv4 and IPv6', () => {
    const cases: [string, string][] = [
      ['0.0.0.0', 'unspecified ("this network")'],
      ['127.0.0.1', 'loopback'], ['127.255.255.254', 'loopback'],
      ['10.0.0.1', 'private'], ['172.16.0.1', 'private'], ['172.31.255.255', 'private'], ['192.168.0.1', 'private'],
      ['100.64.0.1', 'carrier-grade NAT'], ['100.127.255.255', 'carrier-grade NAT'],
      ['169.254.169.254', 'link-local'],
      ['224.0.0.1', 'multicast'], ['239.255.255.250', 'multicast'],
      ['255.255.255.255', 'reserved (and broadcast)'],
      ['198.18.0.1', 'reserved (benchmarking)'], ['192.0.2.1', 'reserved (documentation)'],
      ['::1', 'loopback'], ['::', 'unspecified'], ['[::1]', 'loopback'],
      ['::ffff:127.0.0.1', 'IPv4-mapped'], ['::ffff:8.8.8.8', 'IPv4-mapped'], ['::127.0.0.1', 'IPv4-compatible'],
      ['64:ff9b::a00:1', 'NAT64'], ['2002:7f00:1::', '6to4'], ['2001:0:4136:e378::1', 'Teredo'],
      ['fc00::1', 'private (unique local)'], ['fd12:3456::1', 'private (unique local)'],
      ['fe80::1', 'link-local'], ['FE80::1', 'link-local'], ['fec0::1', 'site-local'],
      ['ff02::1', 'multicast'], ['2001:db8::1', 'reserved (documentation)'],
    ];
    for (const [ip, reason] of cases) expect(forbiddenAddressReason(ip), ip).toBe(reason);
  });

  it('lets public unicast addresses and non-addresses through', () => {
    for (const ip of ['8.8.8.8', '1.1.1.1', '172.32.0.1', '100.128.0.1', '192.169.0.1', '2606:4700:4700::1111', '2a00:1450:4001::1', 'example.com', '']) {
      expect(forbiddenAddressReason(ip), ip).toBeNull();
    }
  });
});

describe('webhookUrlProblem', () => {
  it('refuses loopback however it is written, once URL has normalised it', () => {
    for (const url of ['http://127.0.0.1/', 'http://0x7f000001/', 'http://2130706433/', 'http://0177.0.0.1/', 'http://127.1/', 'http://127.0.0.1./', 'http://[::1]/', 'http://[0:0:0:0:0:ffff:7f00:1]/', 'http://localhost/', 'http://LocalHost./', 'http://api.localhost/']) {
      expect(webhookUrlProblem(url, false), url).toMatch(/must point at a public address: .* is loopback|IPv4-mapped/);
    }
  });

  it('accepts public targets, and private ones only when allowed', () => {
    expect(webhookUrlProblem('https://hooks.example.com/x?token=1', false)).toBeNull();
    expect(webhookUrlProblem('http://8.8.8.8:8080/', false)).toBeNull();
    expect(webhookUrlProblem('http://10.0.0.5/', false)).toMatch(/10\.0\.0\.5 is private/);
    expect(webhookUrlProblem('http://10.0.0.5/', true)).toBeNull();
  });

  it('refuses other schemes, junk and credentials (allowed private or not)', () => {
    expect(webhookUrlProblem('file:///etc/passwd', true)).toBe('webhookUrl must be an absolute http(s) URL');
    expect(webhookUrlProblem('not a url', true)).toBe('webhookUrl must be an absolute http(s) URL');
    expect(webhookUrlProblem('https://user:pass@example.com/', true)).toMatch(/must not contain credentials/);
    expect(webhookUrlProblem('https://user@example.com/', false)).toMatch(/must not contain credentials/);
  });
});

describe('redactUrl', () => {
  it('keeps scheme, host, port and path only', () => {
    expect(redactUrl('https://u:p@example.com:8443/a/b?token=x#f')).toBe('https://example.com:8443/a/b');
    expect(redactUrl('http://[::1]:80/')).toBe('http://[::1]/');
    expect(redactUrl('::nonsense')).toBe('(invalid URL)');
  });
});
