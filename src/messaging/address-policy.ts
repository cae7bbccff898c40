// Which network addresses a media URL may reach: public unicast only, so a caller cannot make us fetch internal hosts.
import ipaddr from 'ipaddr.js';

/** Decides whether the fetcher may connect to `address` (an IP literal) on `port`. */
export type AddressChecker = (address: string, port: number) => boolean;

/** Cloud metadata endpoints, named even though their ranges (link-local, unique-local) are refused anyway. */
const METADATA = new Set(['169.254.169.254', 'fd00:ec2::254']);

/**
 * True only for public unicast addresses. ipaddr.js names every special range (loopback, private, linkLocal,
 * carrierGradeNat, multicast, unspecified, broadcast, reserved, uniqueLocal, 6to4, teredo, rfc6052…); an
 * allowlist of 'unicast' refuses them all, including ranges added later. IPv4-mapped IPv6 is judged as its IPv4.
 */
export function isPublicAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  let parsed = ipaddr.parse(address);
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) {
    parsed = (parsed as ipaddr.IPv6).toIPv4Address();
  }
  if (METADATA.has(parsed.toNormalizedString()) || METADATA.has(parsed.toString())) return false;
  return parsed.range() === 'unicast';
}

export const publicAddressesOnly: AddressChecker = (address) => isPublicAddress(address);

/** MEDIA_ALLOW_PRIVATE_NETWORKS=true: every address goes (tests and closed networks only). */
export const anyAddress: AddressChecker = (address) => ipaddr.isValid(address);
