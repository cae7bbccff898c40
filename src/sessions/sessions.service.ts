// The session lifecycle: create, read, list, delete, reconnect, QR and pairing code; restore at boot.
import type { AgentKeyStore } from '../auth/agent-keys.js';
import type { ApiKeysRepository } from '../auth/api-keys.repository.js';
import { apikeyProblem, creationKey, isWeakKey, type KeySource } from '../auth/key-state.js';
import type { Cluster } from '../cluster/cluster.js';
import type { Engine } from '../engines/engine.js';
import { AppError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { type PacingSetting, pacingColumn, storedPacing } from '../pacing/pacing.schemas.js';
import type { PacingProfiles } from '../pacing/pacing-profiles.js';
import type { EngineName } from '../whatsapp/engine-names.js';
import { phoneDigits } from '../whatsapp/jid.js';
import type { SessionBoard } from './session-board.js';
import { runWithConcurrency, type SessionSupervisor } from './session-supervisor.js';
import type { SessionRow, SessionsRepository } from './sessions.repository.js';
import type { CreateSessionInput, SessionStatus, UpdateSessionInput } from './sessions.schemas.js';

export interface SessionsServiceOptions {
  repo: SessionsRepository;
  apiKeys: ApiKeysRepository;
  keys: AgentKeyStore;
  supervisor: SessionSupervisor;
  logger: Logger;
  defaultEngine: EngineName;
  aiBackendUrl: string;
  qrWaitTimeoutMs: number;
  startConcurrency: number;
  defaultCountryCode: string;
  /** The live state of every session, here or on another member; told when one is deleted. */
  board: Pick<SessionBoard, 'entry' | 'removed' | 'handOver'>;
  /** Which member runs which session: a session starts only where its lease is held. */
  cluster: Pick<Cluster, 'single' | 'epochOf' | 'claim' | 'forget'>;
  /** Told when an agent's pacing setting is saved (src/pacing/). */
  pacing?: Pick<PacingProfiles, 'changed'> | undefined;
}

export class SessionsService {
  private readonly removalHooks = new Set<(agentId: string) => Promise<void>>();

  constructor(private readonly options: SessionsServiceOptions) {}

  /** Work a delete waits for before it answers (the outbox drops the agent's queue). Returns an unsubscribe. */
  onRemoval(hook: (agentId: string) => Promise<void>): () => void {
    this.removalHooks.add(hook);
    return () => this.removalHooks.delete(hook);
  }

  private get supervisor(): SessionSupervisor {
    return this.options.supervisor;
  }

  async create(input: CreateSessionInput, { waitForQr = false } = {}): Promise<SessionStatus> {
    const { repo, apiKeys, keys, aiBackendUrl, defaultEngine } = this.options;
    const problem = input.apikey === undefined ? null : apikeyProblem(input.apikey);
    if (problem) throw new AppError('INVALID_PAYLOAD', problem);
    const existing = await repo.find(input.agentId);
    if (existing && existing.userId !== input.userId) throw new AppError('AGENT_OWNED_BY_OTHER_USER');
    const chosen = creationKey({
      latest: await apiKeys.latestActiveKey(input.userId),
      given: input.apikey,
      existing: existing && { apiKey: existing.apiKey, source: existing.apiKeySource as KeySource | null },
    });
    if (!chosen) {
      throw new AppError('INVALID_PAYLOAD', 'apikey is required: the user has no active key in api_keys');
    }
    const { apiKey, source: apiKeySource } = chosen;
    if (isWeakKey(apiKey)) {
      this.options.logger.warn(
        { event: 'auth.weak_api_key', agentId: input.agentId, source: apiKeySource },
        'the agent key is shorter than 16 characters and can be guessed; give the agent a long random key',
      );
    }
    const engineName = input.engine ?? (existing?.engine as EngineName | null) ?? defaultEngine;
    const engine = this.requireEngine(engineName);
    const endpointUrlRun = existing?.endpointUrlRun || `${aiBackendUrl}/agents/${input.agentId}/execute`;

    if (!existing) {
      // Before the row exists: once it does, its session may be started (here, or by another member) and must not
      // find a login an earlier agent of this id left behind; a failure here leaves no row, and a retry clears again.
      await this.supervisor.clearStoredLogins(input.agentId);
      const inserted = await repo.insert({
        userId: input.userId,
        agentId: input.agentId,
        agentName: input.agentName,
        apiKey,
        apiKeySource,
        endpointUrlRun,
        engine: engineName,
        status: 'awaiting_qr',
        ...(input.pacing === undefined ? {} : { pacing: pacingColumn(input.pacing) }),
      });
      // A concurrent create of the same agent inserted it first: answer as for an agent that exists (200 or 409).
      if (!inserted) return this.create(input, { waitForQr });
    } else {
      await repo.update(input.agentId, {
        agentName: input.agentName,
        apiKey,
        apiKeySource,
        endpointUrlRun,
        engine: engineName,
        ...(input.pacing === undefined ? {} : { pacing: pacingColumn(input.pacing) }),
      });
    }
    if (input.pacing !== undefined) this.pacingChanged(input.agentId, input.pacing);
    keys.set(input.agentId, input.userId, apiKey, apiKeySource);
    // In a cluster, the member that created the agent takes its lease; should another have been quicker, that one
    // starts the session when it is asked for a QR code.
    if (!(await this.owns(input.agentId))) return this.get(input.agentId);
    // A connected session is not touched; anything else (new, stopped, failed) is started.
    if (this.supervisor.readySession(input.agentId) === null) await this.supervisor.start(input.agentId, engine);
    if (waitForQr) await this.waitForQr(input.agentId);
    return this.get(input.agentId);
  }

  async get(agentId: string): Promise<SessionStatus> {
    return this.toStatus(await this.requireRow(agentId));
  }

  /** PATCH /sessions/{agentId}: changes what is given (the pacing setting), keeps the rest. */
  async update(agentId: string, input: UpdateSessionInput): Promise<SessionStatus> {
    await this.requireRow(agentId);
    if (input.pacing !== undefined) {
      await this.options.repo.update(agentId, { pacing: pacingColumn(input.pacing) });
      this.pacingChanged(agentId, input.pacing);
      this.options.logger.info({ event: 'session.pacing', agentId, pacing: input.pacing }, 'pacing changed');
    }
    return this.get(agentId);
  }

  private pacingChanged(agentId: string, setting: PacingSetting): void {
    this.options.pacing?.changed(agentId, setting);
  }

  async list(limit: number, offset: number) {
    const { rows, total } = await this.options.repo.page(limit, offset);
    return { items: rows.map((row) => this.toStatus(row)), total, limit, offset };
  }

  async remove(agentId: string): Promise<{ deleted: boolean; alreadyRemoved?: boolean }> {
    const row = await this.options.repo.find(agentId);
    if (!row) return { deleted: false, alreadyRemoved: true };
    await this.endLogin(row);
    await this.supervisor.stop(agentId, { logout: false, forget: true });
    await this.options.repo.delete(agentId);
    await this.options.cluster.forget(agentId);
    this.options.keys.remove(agentId);
    await Promise.all([...this.removalHooks].map((hook) => hook(agentId)));
    await this.options.board.removed(agentId);
    this.options.logger.info({ event: 'session.deleted', agentId }, 'session deleted');
    return { deleted: true };
  }

  /** Stops the client, clears the stored login and starts again for a fresh QR code; the row stays. */
  async reconnect(agentId: string): Promise<SessionStatus> {
    const row = await this.requireRow(agentId);
    const engine = this.requireEngine(this.engineName(row));
    await this.requireOwnership(agentId);
    await this.endLogin(row);
    await this.options.repo.update(agentId, { status: 'awaiting_qr', waJid: null, lastError: null });
    await this.supervisor.start(agentId, engine);
    return this.get(agentId);
  }

  async waitForQr(
    agentId: string,
  ): Promise<{ agentId: string; qr: { contentType: 'image/png'; base64: string }; qrUpdatedAt: string }> {
    const row = await this.requireRow(agentId);
    await this.requireOwnership(agentId);
    if (this.supervisor.readySession(agentId)) throw new AppError('SESSION_ALREADY_CONNECTED');
    const outcome = await this.supervisor.startForQr(agentId, this.options.qrWaitTimeoutMs, () =>
      this.requireEngine(this.engineName(row)),
    );
    if (outcome === 'connected') throw new AppError('SESSION_ALREADY_CONNECTED');
    if (outcome === 'unavailable') throw this.engineUnavailable(agentId);
    const qr = this.supervisor.qr(agentId);
    if (outcome === 'timeout' || !qr) throw new AppError('QR_TIMEOUT');
    return {
      agentId,
      qr: { contentType: 'image/png', base64: qr.png.toString('base64') },
      qrUpdatedAt: qr.updatedAt.toISOString(),
    };
  }

  async qrPng(agentId: string): Promise<Buffer> {
    await this.requireRow(agentId);
    if (this.supervisor.readySession(agentId)) throw new AppError('SESSION_ALREADY_CONNECTED');
    const qr = this.supervisor.qr(agentId);
    if (!qr) throw new AppError('NOT_FOUND', 'No QR code is showing now; POST /sessions/{agentId}/qr starts one.');
    return qr.png;
  }

  async requestPairingCode(agentId: string, phone: string): Promise<{ agentId: string; code: string }> {
    const digits = phoneDigits(phone, this.options.defaultCountryCode);
    if (digits === null) throw new AppError('INVALID_RECIPIENT', 'phone must be a phone number (8 to 15 digits)');
    const row = await this.requireRow(agentId);
    await this.requireOwnership(agentId);
    if (this.supervisor.readySession(agentId)) throw new AppError('SESSION_ALREADY_CONNECTED');
    const engine = this.requireEngine(this.engineName(row));
    if (!this.supervisor.isRunning(agentId)) {
      const outcome = await this.supervisor.startForQr(agentId, this.options.qrWaitTimeoutMs, () => engine);
      if (outcome === 'unavailable') throw this.engineUnavailable(agentId);
      if (outcome !== 'qr') throw new AppError('QR_TIMEOUT');
    }
    const session = this.supervisor.session(agentId);
    if (!session?.requestPairingCode)
      throw new AppError('ENGINE_UNSUPPORTED', `The ${engine.name} engine has no pairing codes.`);
    const code = await session.requestPairingCode(digits);
    return { agentId, code };
  }

  /** Boot, one process: starts again every session that has a stored login, a few at a time. */
  async restore(): Promise<void> {
    const { repo, startConcurrency } = this.options;
    const rows = await repo.all();
    await runWithConcurrency(rows, startConcurrency, (row) => this.resume(row));
  }

  /**
   * This member now runs the agent (it took the agent's lease): its session starts again when a login is stored, as
   * at boot; one that still needs a QR code starts when someone asks for one.
   */
  async adopt(agentId: string): Promise<void> {
    const row = await this.options.repo.find(agentId);
    if (row) await this.resume(row);
  }

  /** This member no longer runs the agent: its session stops, keeping the login, and its live state goes elsewhere. */
  async release(agentId: string): Promise<void> {
    this.options.board.handOver(agentId);
    await this.supervisor.stop(agentId, { logout: false, forget: true });
  }

  /** Whether this member runs the agent's session: it holds the lease, or took it now because nobody did. */
  private async owns(agentId: string): Promise<boolean> {
    const { cluster } = this.options;
    return cluster.single || cluster.epochOf(agentId) !== null || (await cluster.claim(agentId));
  }

  /**
   * What starts or stops a session runs on its owner (the routes forward it there). A request that reached a member
   * which is no longer the owner (the lease moved meanwhile) is refused rather than run twice.
   */
  private async requireOwnership(agentId: string): Promise<void> {
    if (await this.owns(agentId)) return;
    throw new AppError('SERVICE_UNAVAILABLE', 'The session is moving to another instance; retry shortly.', {
      headers: { 'retry-after': '2' },
    });
  }

  private async resume(row: SessionRow): Promise<void> {
    const engine = this.supervisor.engine(this.engineName(row));
    if (!engine || !(await engine.hasStoredLogin(row.agentId))) return;
    this.options.logger.info({ event: 'session.restore', agentId: row.agentId }, 'restoring session');
    await this.supervisor.start(row.agentId, engine);
  }

  private async endLogin(row: SessionRow): Promise<void> {
    if (this.supervisor.isRunning(row.agentId)) {
      await this.supervisor.stop(row.agentId, { logout: true });
      return;
    }
    await this.supervisor.stop(row.agentId, { logout: false });
    await this.supervisor.engine(this.engineName(row))?.clearStoredLogin(row.agentId);
  }

  /** 503 at once, with the reason the engine gave, instead of waiting out QR_WAIT_TIMEOUT_MS for nothing. */
  private engineUnavailable(agentId: string): AppError {
    const reason = this.supervisor.snapshot(agentId).lastError ?? 'the engine cannot start';
    return new AppError('ENGINE_UNAVAILABLE', `The session's engine cannot start: ${reason}`);
  }

  private async requireRow(agentId: string): Promise<SessionRow> {
    const row = await this.options.repo.find(agentId);
    if (!row) throw new AppError('SESSION_NOT_FOUND');
    return row;
  }

  private engineName(row: SessionRow): EngineName {
    return (row.engine as EngineName | null) ?? this.options.defaultEngine;
  }

  private requireEngine(name: EngineName): Engine {
    const engine = this.supervisor.engine(name);
    if (!engine) throw new AppError('INVALID_PAYLOAD', `engine: ${name} is not enabled on this service`);
    return engine;
  }

  /** The live state, and the member that runs the session (null when none does now). */
  private live(agentId: string): Pick<SessionStatus, 'liveState' | 'owner'> {
    const { liveState, owner } = this.options.board.entry(agentId);
    return { liveState, owner };
  }

  private toStatus(row: SessionRow): SessionStatus {
    return {
      agentId: row.agentId,
      agentName: row.agentName,
      userId: String(row.userId),
      engine: this.engineName(row),
      status: row.status,
      lastConnectedAt: row.lastConnectedAt?.toISOString() ?? null,
      lastDisconnectedAt: row.lastDisconnectedAt?.toISOString() ?? null,
      lastError: row.lastError,
      endpointUrlRun: row.endpointUrlRun,
      weakApiKey: row.apiKey !== null && isWeakKey(row.apiKey),
      createdAt: row.createdAt.toISOString(),
      updatedAt: row.updatedAt.toISOString(),
      pacing: storedPacing(row.pacing),
      ...this.live(row.agentId),
    };
  }
}
