// The cluster panel: the members GET /cluster lists, with their heartbeat, capacity and owned sessions.
import { $ } from './sessions-view.js';

/** How long ago, in words short enough for a table cell: "0.4 s", "12 s", "3 min 5 s", "2 h 10 min". */
export function formatAge(ms) {
  if (!Number.isFinite(ms) || ms < 0) return '—';
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${seconds % 60} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

const COLUMNS = ['Instance', 'State', 'Capacity', 'Sessions'];

/** A cell whose content is one box, so that on a phone (cells as label: value grids) it stays beside its label. */
function cell(label, ...content) {
  const element = document.createElement('td');
  element.dataset.label = label;
  const box = document.createElement('div');
  box.append(...content);
  element.append(box);
  return element;
}

function badge(text, tone) {
  const element = document.createElement('span');
  element.className = `badge ${tone}`;
  element.textContent = text;
  return element;
}

function sub(text) {
  const element = document.createElement('span');
  element.className = 'sub';
  element.textContent = text;
  return element;
}

/**
 * Renders the answer of GET /cluster: one row per member, the member that answered marked. Every text goes in
 * through textContent: an instance id or URL is never read as HTML.
 * @param {{ self: string, single: boolean, members: Array<{ instanceId: string, url: string | null,
 *   maxSessions: number | null, heartbeatAgeMs: number, live: boolean, sessions: number, self: boolean }> }} view
 * @param {Date} at when the answer arrived
 */
export function renderCluster(view, at = new Date()) {
  const body = $('cluster-body');
  const rows = view.members.map((member) => {
    const row = document.createElement('tr');
    row.dataset.instance = member.instanceId;
    row.classList.toggle('gone', !member.live);
    const name = document.createElement('span');
    name.className = 'instance';
    name.textContent = member.instanceId;
    const identity = [name];
    if (member.self) {
      const self = badge('this one', 'idle');
      self.title = 'The instance that answered this refresh';
      identity.push(self);
    }
    if (member.url) identity.push(sub(member.url));
    const heartbeat = `heartbeat ${formatAge(member.heartbeatAgeMs)} ago`;
    row.append(
      cell(COLUMNS[0], ...identity),
      cell(COLUMNS[1], badge(member.live ? 'live' : 'gone', member.live ? 'ok' : 'bad'), sub(heartbeat)),
      cell(COLUMNS[2], member.maxSessions === null ? '—' : String(member.maxSessions)),
      cell(COLUMNS[3], String(member.sessions)),
    );
    return row;
  });
  body.replaceChildren(...rows);
  const live = view.members.filter((m) => m.live);
  const owned = live.reduce((sum, m) => sum + m.sessions, 0);
  $('cluster-summary').textContent = view.single
    ? 'One process (embedded database): it runs every session.'
    : `${live.length} live ${live.length === 1 ? 'member' : 'members'}, ${owned} ${owned === 1 ? 'session' : 'sessions'} owned.`;
  $('cluster-updated').textContent = `Updated ${at.toLocaleTimeString()}.`;
}
