// The client a failed authentication is counted against: its IPv4 address, or its IPv6 /64.
import ipaddr from 'ipaddr.js';

/**
 * One ISP customer usually holds a whole IPv6 /64, so counting single IPv6 addresses would give one attacker 2^64
 * budgets. An IPv4-mapped IPv6 address counts as its IPv4.
 */
export function clientAddress(ip: string): string {
  // Every authenticated request asks: the common forms are decided without parsing.
  if (!ip.includes(':')) return ip;
  if (ip.startsWith('::ffff:') && ip.includes('.')) return ip.slice(7);
  if (!ipaddr.isValid(ip)) return ip;
  const parsed = ipaddr.process(ip);
  if (parsed.kind() === 'ipv4') return parsed.toString();
  const parts = (parsed as ipaddr.IPv6).parts.slice(0, 4);
  return `${parts.map((part) => part.toString(16)).join(':')}::/64`;
}
