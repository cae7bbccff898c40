// SQL migrations, applied in order at boot under an advisory lock. Never edit one that has shipped; add a new one.

export interface Migration {
  id: string;
  sql: string;
}

export const migrations: Migration[] = [
  {
    id: '0001_whatsapp_user',
    // The original service may have created whatsapp_user already (seed columns, key (user_id, agent_id)):
    // every statement is written to upgrade that table in place and keep its rows.
    sql: `
      CREATE TABLE IF NOT EXISTS whatsapp_user (
        user_id text NOT NULL,
        agent_id text NOT NULL,
        agent_name text,
        api_key text,
        endpoint_url_run text,
        status text NOT NULL DEFAULT 'awaiting_qr',
        last_connected_at timestamptz,
        last_disconnected_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (user_id, agent_id)
      );
      ALTER TABLE whatsapp_user
        ADD COLUMN IF NOT EXISTS agent_name text,
        ADD COLUMN IF NOT EXISTS api_key text,
        ADD COLUMN IF NOT EXISTS endpoint_url_run text,
        ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'awaiting_qr',
        ADD COLUMN IF NOT EXISTS last_connected_at timestamptz,
        ADD COLUMN IF NOT EXISTS last_disconnected_at timestamptz,
        ADD COLUMN IF NOT EXISTS created_at timestamptz NOT NULL DEFAULT now(),
        ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now(),
        ADD COLUMN IF NOT EXISTS engine text,
        ADD COLUMN IF NOT EXISTS wa_jid text,
        ADD COLUMN IF NOT EXISTS last_error text;
      CREATE UNIQUE INDEX IF NOT EXISTS whatsapp_user_agent_id_key ON whatsapp_user (agent_id);
    `,
  },
  {
    id: '0002_outbox_inbound_baileys',
    sql: `
      CREATE TABLE IF NOT EXISTS outbox_messages (
        id text PRIMARY KEY,
        seq bigserial NOT NULL,
        agent_id text NOT NULL,
        kind text NOT NULL,
        to_jid text NOT NULL,
        payload jsonb NOT NULL,
        media bytea,
        status text NOT NULL DEFAULT 'queued',
        attempts integer NOT NULL DEFAULT 0,
        wa_message_id text,
        error text,
        idempotency_key text,
        trace_id text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        sent_at timestamptz
      );
      CREATE UNIQUE INDEX IF NOT EXISTS outbox_messages_idempotency_key
        ON outbox_messages (agent_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
      CREATE INDEX IF NOT EXISTS outbox_messages_pending
        ON outbox_messages (agent_id, seq) WHERE status IN ('queued', 'sending');

      CREATE TABLE IF NOT EXISTS inbound_messages (
        agent_id text NOT NULL,
        wa_message_id text NOT NULL,
        chat_jid text NOT NULL,
        outcome text,
        received_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (agent_id, wa_message_id)
      );
      CREATE INDEX IF NOT EXISTS inbound_messages_received_at ON inbound_messages (received_at);

      CREATE TABLE IF NOT EXISTS baileys_auth (
        agent_id text NOT NULL,
        key text NOT NULL,
        value text NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (agent_id, key)
      );
    `,
  },
  {
    id: '0003_api_key_source',
    // Where the agent's key came from: 'api_keys' (revoked when deactivated or deleted there) or 'admin' (the apikey
    // given at creation, kept until api_keys has a key for the user). Existing rows stay NULL: api_keys may not exist
    // yet when this runs, so the key sync derives their source from api_keys on its first pass.
    sql: `
      ALTER TABLE whatsapp_user ADD COLUMN IF NOT EXISTS api_key_source text;
    `,
  },
  {
    id: '0004_engine_logins',
    // Logins that move between processes (docs/cluster.md). The sandbox's scanned phone; whatsapp-web's login, the
    // part of the browser profile that holds it, packed (profile-archive.ts). `generation` changes on every write, so
    // a process whose copy is older than the row's cannot overwrite it.
    sql: `
      CREATE TABLE IF NOT EXISTS sandbox_logins (
        agent_id text PRIMARY KEY,
        phone text NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE IF NOT EXISTS wwebjs_logins (
        agent_id text PRIMARY KEY,
        generation text NOT NULL,
        data bytea NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
      );
    `,
  },
  {
    id: '0005_cluster',
    // Members and session leases (docs/cluster.md, src/cluster/). The epoch goes up on every change of hands and is
    // the fencing token; owner is NULL once a member gives the lease up. PGlite gets the tables, and never uses them.
    // session_live and cluster_settings serve the same members (docs/cluster.md, "Any member answers any request").
    sql: `
      CREATE TABLE IF NOT EXISTS cluster_members (
        instance_id text PRIMARY KEY,
        incarnation text NOT NULL,
        url text,
        max_sessions integer,
        started_at timestamptz NOT NULL DEFAULT now(),
        heartbeat_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE IF NOT EXISTS session_leases (
        agent_id text PRIMARY KEY,
        owner text,
        epoch bigint NOT NULL DEFAULT 0,
        expires_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX IF NOT EXISTS session_leases_owner ON session_leases (owner);
      -- The live state each owner publishes for the other members (src/sessions/session-board.ts).
      CREATE TABLE IF NOT EXISTS session_live (
        agent_id text PRIMARY KEY,
        owner text,
        state jsonb NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      -- Settings every member shares: the secret of forwarded requests when CLUSTER_SECRET is not set.
      CREATE TABLE IF NOT EXISTS cluster_settings (
        name text PRIMARY KEY,
        value text NOT NULL
      );
    `,
  },
  {
    id: '0006_outbox_receipts',
    // WhatsApp's receipts of each sent message (src/outbox/receipts.ts): when each first came, and an error. They are
    // matched by the agent and WhatsApp's id of the message, hence the index (sent rows only).
    sql: `
      ALTER TABLE outbox_messages
        ADD COLUMN IF NOT EXISTS server_at timestamptz,
        ADD COLUMN IF NOT EXISTS delivered_at timestamptz,
        ADD COLUMN IF NOT EXISTS read_at timestamptz,
        ADD COLUMN IF NOT EXISTS played_at timestamptz,
        ADD COLUMN IF NOT EXISTS ack_error text,
        ADD COLUMN IF NOT EXISTS ack_error_at timestamptz;
      CREATE INDEX IF NOT EXISTS outbox_messages_wa_message_id
        ON outbox_messages (agent_id, wa_message_id) WHERE wa_message_id IS NOT NULL;
    `,
  },
  {
    id: '0007_message_store',
    // Every inbound message of a connected agent is kept (src/inbound/inbound.repository.ts), answered or not, with
    // what the chat history serves (src/history/): rows written before this have NULL there. The chat history reads
    // both tables by agent, chat and time, newest first; the purge reads inbound rows by time (its index exists).
    sql: `
      ALTER TABLE inbound_messages
        ADD COLUMN IF NOT EXISTS sender_jid text,
        ADD COLUMN IF NOT EXISTS from_me boolean,
        ADD COLUMN IF NOT EXISTS is_group boolean,
        ADD COLUMN IF NOT EXISTS type text,
        ADD COLUMN IF NOT EXISTS text text,
        ADD COLUMN IF NOT EXISTS quoted_message_id text,
        ADD COLUMN IF NOT EXISTS media jsonb,
        ADD COLUMN IF NOT EXISTS push_name text,
        ADD COLUMN IF NOT EXISTS chat_name text;
      CREATE INDEX IF NOT EXISTS inbound_messages_chat
        ON inbound_messages (agent_id, chat_jid, received_at, wa_message_id);
      CREATE INDEX IF NOT EXISTS outbox_messages_chat ON outbox_messages (agent_id, to_jid, created_at, id);
      CREATE INDEX IF NOT EXISTS outbox_messages_settled ON outbox_messages (updated_at) WHERE status IN ('sent', 'failed');
    `,
  },
  {
    id: '0008_webhooks',
    // Webhooks (src/webhooks/). Endpoints (agent_id NULL: an admin-level endpoint, every agent's events) and one
    // delivery row per event and endpoint. The deliveries are written by the statement-level triggers below, in the
    // same transaction as the state change they describe (an inbound row stored, an outbox row sent or failed, a
    // receipt, an AI failure, a session status): nothing the services write can be committed without its events,
    // and no code path can forget one. A trigger costs one look at webhook_endpoints (a few rows at most) per
    // statement, not per row, and returns at once when no endpoint is enabled. order_key (the chat) orders the
    // deliveries of one endpoint: only the oldest pending delivery of each (endpoint, agent, order_key) may be sent.
    sql: `
      CREATE TABLE IF NOT EXISTS webhook_endpoints (
        id text PRIMARY KEY,
        agent_id text,
        url text NOT NULL,
        events text[],
        enabled boolean NOT NULL DEFAULT true,
        description text,
        secret text NOT NULL,
        previous_secret text,
        previous_secret_until timestamptz,
        failing_since timestamptz,
        disabled_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX IF NOT EXISTS webhook_endpoints_agent ON webhook_endpoints (agent_id, created_at);
      CREATE TABLE IF NOT EXISTS webhook_deliveries (
        id text PRIMARY KEY,
        seq bigserial NOT NULL,
        event_id text NOT NULL,
        endpoint_id text NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
        agent_id text,
        type text NOT NULL,
        order_key text NOT NULL,
        payload jsonb NOT NULL,
        status text NOT NULL DEFAULT 'pending',
        attempts integer NOT NULL DEFAULT 0,
        next_attempt_at timestamptz,
        claimed_until timestamptz,
        give_up_at timestamptz,
        last_status_code integer,
        last_error text,
        last_attempt_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (seq) WHERE status = 'pending';
      CREATE INDEX IF NOT EXISTS webhook_deliveries_chat
        ON webhook_deliveries (endpoint_id, order_key, seq) WHERE status = 'pending';
      CREATE INDEX IF NOT EXISTS webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, seq);
      CREATE INDEX IF NOT EXISTS webhook_deliveries_settled
        ON webhook_deliveries (updated_at) WHERE status IN ('delivered', 'failed');

      -- One event per element of the arrays, delivered to every enabled endpoint of its agent (or admin-level) that
      -- takes its type; one NOTIFY per statement wakes the dispatchers.
      CREATE OR REPLACE FUNCTION wamt_webhook_emit(p_type text, p_agents text[], p_keys text[], p_data jsonb[])
      RETURNS void LANGUAGE plpgsql AS $fn$
      DECLARE
        inserted integer;
      BEGIN
        IF cardinality(p_agents) = 0 OR NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE enabled) THEN
          RETURN;
        END IF;
        WITH ev AS MATERIALIZED (
          SELECT 'evt_' || replace(gen_random_uuid()::text, '-', '') AS event_id, u.agent_id, u.order_key, u.data, u.ord
          FROM unnest(p_agents, p_keys, p_data) WITH ORDINALITY AS u (agent_id, order_key, data, ord)
        ), rows AS (
          INSERT INTO webhook_deliveries (id, event_id, endpoint_id, agent_id, type, order_key, payload)
          SELECT 'whd_' || replace(gen_random_uuid()::text, '-', ''), ev.event_id, e.id, ev.agent_id, p_type,
            ev.order_key,
            jsonb_build_object('id', ev.event_id, 'type', p_type,
              'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
              'agentId', ev.agent_id, 'data', ev.data)
          FROM ev JOIN webhook_endpoints e
            ON e.enabled AND (e.agent_id = ev.agent_id OR e.agent_id IS NULL)
              AND (e.events IS NULL OR p_type = ANY (e.events))
          ORDER BY ev.ord, e.id
          RETURNING 1
        )
        SELECT count(*) INTO inserted FROM rows;
        IF inserted > 0 THEN
          PERFORM pg_notify('wamt_webhooks', '');
        END IF;
      END
      $fn$;

      CREATE OR REPLACE FUNCTION wamt_webhook_inbound_insert() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        IF NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE enabled) THEN RETURN NULL; END IF;
        PERFORM wamt_webhook_emit('message.received', coalesce(array_agg(n.agent_id), '{}'),
          coalesce(array_agg(n.chat_jid), '{}'),
          coalesce(array_agg(jsonb_build_object('messageId', n.wa_message_id, 'chatId', n.chat_jid,
            'from', n.sender_jid, 'fromMe', n.from_me, 'isGroup', n.is_group, 'type', n.type, 'text', n.text,
            'quotedMessageId', n.quoted_message_id, 'media', n.media, 'pushName', n.push_name,
            'chatName', n.chat_name, 'receivedAt', n.received_at)), '{}'))
        FROM new_rows n;
        RETURN NULL;
      END
      $fn$;

      CREATE OR REPLACE FUNCTION wamt_webhook_inbound_update() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        IF NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE enabled) THEN RETURN NULL; END IF;
        PERFORM wamt_webhook_emit('ai.failed', coalesce(array_agg(n.agent_id), '{}'),
          coalesce(array_agg(n.chat_jid), '{}'),
          coalesce(array_agg(jsonb_build_object('messageId', n.wa_message_id, 'chatId', n.chat_jid,
            'from', n.sender_jid)), '{}'))
        FROM new_rows n JOIN old_rows o ON o.agent_id = n.agent_id AND o.wa_message_id = n.wa_message_id
        WHERE n.outcome = 'ai_error' AND o.outcome IS DISTINCT FROM 'ai_error';
        RETURN NULL;
      END
      $fn$;

      CREATE OR REPLACE FUNCTION wamt_webhook_outbox_update() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        IF NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE enabled) THEN RETURN NULL; END IF;
        PERFORM wamt_webhook_emit('message.sent', coalesce(array_agg(n.agent_id), '{}'),
          coalesce(array_agg(n.to_jid), '{}'),
          coalesce(array_agg(jsonb_build_object('messageId', n.id, 'waMessageId', n.wa_message_id,
            'chatId', n.to_jid, 'kind', n.kind, 'attempts', n.attempts, 'sentAt', n.sent_at)), '{}'))
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.status = 'sent' AND o.status IS DISTINCT FROM 'sent';
        PERFORM wamt_webhook_emit('message.failed', coalesce(array_agg(n.agent_id), '{}'),
          coalesce(array_agg(n.to_jid), '{}'),
          coalesce(array_agg(jsonb_build_object('messageId', n.id, 'chatId', n.to_jid, 'kind', n.kind,
            'attempts', n.attempts, 'error', n.error)), '{}'))
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.status = 'failed' AND o.status IS DISTINCT FROM 'failed';
        PERFORM wamt_webhook_emit('message.status', coalesce(array_agg(n.agent_id), '{}'),
          coalesce(array_agg(n.to_jid), '{}'),
          coalesce(array_agg(jsonb_build_object('messageId', n.id, 'waMessageId', n.wa_message_id,
            'chatId', n.to_jid,
            'status', CASE
              WHEN n.ack_error_at IS NOT NULL AND o.ack_error_at IS NULL THEN 'error'
              WHEN n.played_at IS NOT NULL AND o.played_at IS NULL THEN 'played'
              WHEN n.read_at IS NOT NULL AND o.read_at IS NULL THEN 'read'
              WHEN n.delivered_at IS NOT NULL AND o.delivered_at IS NULL THEN 'delivered'
              ELSE 'server' END,
            'error', n.ack_error, 'serverAt', n.server_at, 'deliveredAt', n.delivered_at, 'readAt', n.read_at,
            'playedAt', n.played_at)), '{}'))
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE (n.server_at IS NOT NULL AND o.server_at IS NULL)
          OR (n.delivered_at IS NOT NULL AND o.delivered_at IS NULL)
          OR (n.read_at IS NOT NULL AND o.read_at IS NULL)
          OR (n.played_at IS NOT NULL AND o.played_at IS NULL)
          OR (n.ack_error_at IS NOT NULL AND o.ack_error_at IS NULL);
        RETURN NULL;
      END
      $fn$;

      CREATE OR REPLACE FUNCTION wamt_webhook_session_update() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        IF NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE enabled) THEN RETURN NULL; END IF;
        PERFORM wamt_webhook_emit('session.status', coalesce(array_agg(n.agent_id), '{}'),
          coalesce(array_agg(''::text), '{}'),
          coalesce(array_agg(jsonb_build_object('status', n.status, 'previousStatus', o.status,
            'lastError', n.last_error)), '{}'))
        FROM new_rows n JOIN old_rows o ON o.user_id = n.user_id AND o.agent_id = n.agent_id
        WHERE n.status IS DISTINCT FROM o.status;
        RETURN NULL;
      END
      $fn$;

      -- An agent deleted takes its endpoints (and their deliveries) with it: a new agent of the same id starts bare.
      CREATE OR REPLACE FUNCTION wamt_webhook_session_delete() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        DELETE FROM webhook_endpoints e USING old_rows o
        WHERE e.agent_id = o.agent_id AND NOT EXISTS (SELECT 1 FROM whatsapp_user u WHERE u.agent_id = o.agent_id);
        RETURN NULL;
      END
      $fn$;
      DROP TRIGGER IF EXISTS wamt_webhook_session_delete ON whatsapp_user;
      CREATE TRIGGER wamt_webhook_session_delete AFTER DELETE ON whatsapp_user
        REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION wamt_webhook_session_delete();

      DROP TRIGGER IF EXISTS wamt_webhook_inbound_insert ON inbound_messages;
      CREATE TRIGGER wamt_webhook_inbound_insert AFTER INSERT ON inbound_messages
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION wamt_webhook_inbound_insert();
      DROP TRIGGER IF EXISTS wamt_webhook_inbound_update ON inbound_messages;
      CREATE TRIGGER wamt_webhook_inbound_update AFTER UPDATE ON inbound_messages
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION wamt_webhook_inbound_update();
      DROP TRIGGER IF EXISTS wamt_webhook_outbox_update ON outbox_messages;
      CREATE TRIGGER wamt_webhook_outbox_update AFTER UPDATE ON outbox_messages
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION wamt_webhook_outbox_update();
      DROP TRIGGER IF EXISTS wamt_webhook_session_update ON whatsapp_user;
      CREATE TRIGGER wamt_webhook_session_update AFTER UPDATE ON whatsapp_user
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION wamt_webhook_session_update();
    `,
  },
  {
    id: '0009_inbound_ai_latency',
    // How long the AI took for each inbound message it was asked about (answered or failed; NULL when not asked),
    // written with the outcome (src/inbound/inbound.repository.ts). The activity route (src/activity/) reads one
    // agent's rows of the last hour. Without these indexes its plan ANDs the time index (every agent's rows of the
    // hour) with the agent_id prefix of another index (every row the agent has kept, MESSAGE_RETENTION_DAYS):
    // 12,500 entries of 100,000 rows for one agent of eight; with them it reads that agent's rows of the hour only.
    // Their cost: the inbound one is one more index entry per received message (the outcome update stays HOT: no
    // column of it is indexed); the outbox one costs nothing at insert (a queued row is outside it) and one more entry
    // when a row turns sent or failed, an update that is never HOT anyway (updated_at is indexed); receipts leave
    // both alone. Measured A/B on two copies of the tables, statements of 50 rows alternating: the outbox's write
    // (inserts plus transitions to sent) about 4 % slower (some 10 µs a message), the inbound claim within the noise.
    sql: `
      ALTER TABLE inbound_messages ADD COLUMN IF NOT EXISTS ai_latency_ms integer;
      CREATE INDEX IF NOT EXISTS inbound_messages_agent_received
        ON inbound_messages (agent_id, received_at) WHERE from_me IS NOT TRUE;
      CREATE INDEX IF NOT EXISTS outbox_messages_agent_settled
        ON outbox_messages (agent_id, updated_at) WHERE status IN ('sent', 'failed');
    `,
  },
  {
    id: '0010_identities',
    // One identity per person (src/identity/): the phone number behind each LID, per agent, because which pairs an
    // account knows is that account's business (a number one tenant learned must not show to another). Written from
    // inbound messages and engine events; read by LID (the key) and by phone; purged by updated_at like messages.
    sql: `
      CREATE TABLE IF NOT EXISTS identities (
        agent_id text NOT NULL,
        lid text NOT NULL,
        phone text NOT NULL,
        push_name text,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (agent_id, lid)
      );
      CREATE INDEX IF NOT EXISTS identities_phone ON identities (agent_id, phone);
      CREATE INDEX IF NOT EXISTS identities_updated_at ON identities (updated_at);
    `,
  },
  {
    id: '0011_outbox_media',
    // Outbound files (documents up to 100 MB, audio, video, stickers, images) are stored as ~1 MB chunks, written in
    // the same transaction as their outbox row and read back by whichever member sends them: no single parameter
    // (or value in memory) ever holds a whole large file. A row's chunks go when it is sent or failed (outbox_write)
    // or deleted (the cascade).
    sql: `
      CREATE TABLE IF NOT EXISTS outbox_media_chunks (
        message_id text NOT NULL REFERENCES outbox_messages (id) ON DELETE CASCADE,
        n integer NOT NULL,
        data bytea NOT NULL,
        PRIMARY KEY (message_id, n)
      );
    `,
  },
  {
    id: '0012_media_store',
    // One row per inbound file downloaded for the AI (src/media-store/). The bytes live on the disk of the member that
    // downloaded them (instance_id), under MEDIA_STORE_DIR, named by id; rows and files go after MEDIA_RETENTION_HOURS.
    sql: `
      CREATE TABLE IF NOT EXISTS media_files (
        id text PRIMARY KEY,
        agent_id text NOT NULL,
        message_id text NOT NULL,
        instance_id text NOT NULL,
        kind text NOT NULL,
        mime_type text NOT NULL,
        filename text,
        size_bytes bigint NOT NULL,
        sha256 text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX IF NOT EXISTS media_files_created_at ON media_files (created_at);
    `,
  },
  {
    id: '0013_pacing',
    // Pacing profiles (src/pacing/): the agent's setting ('"human"' or an object; NULL is off). An outbox row's
    // not_before is when a paced message may go (set once, when its agent's dispatcher first takes it, so that a
    // restart honours what is left of the wait). pacing_contact_quota holds, per agent, the new contacts of the last
    // 24 h ({ "<jid>": epoch ms }): one row, updated in one statement, so that two first messages racing the daily cap
    // take turns on its row lock (and only that agent's).
    sql: `
      ALTER TABLE whatsapp_user ADD COLUMN IF NOT EXISTS pacing jsonb;
      ALTER TABLE outbox_messages ADD COLUMN IF NOT EXISTS not_before timestamptz;
      CREATE TABLE IF NOT EXISTS pacing_contact_quota (
        agent_id text PRIMARY KEY,
        contacts jsonb NOT NULL DEFAULT '{}',
        updated_at timestamptz NOT NULL DEFAULT now()
      );
    `,
  },
  {
    id: '0014_webhook_events',
    // Webhook events are written once, not once per endpoint: the triggers (0008) now insert one row per event into
    // webhook_events, in the transaction of the state it describes, when an enabled endpoint takes it; a dispatcher
    // expands the events into deliveries afterwards (wamt_webhook_fan_out), in the order of their seq, one member at a
    // time (an advisory lock), deleting the events in the same statement. With 50 endpoints a sent message costs its
    // transaction one row instead of 50 (BENCHMARKS.md, "Webhooks"). An endpoint takes the events that are expanded
    // while it is enabled and subscribed.
    sql: `
      CREATE TABLE IF NOT EXISTS webhook_events (
        seq bigserial PRIMARY KEY,
        event_id text NOT NULL,
        type text NOT NULL,
        agent_id text NOT NULL,
        order_key text NOT NULL,
        payload jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      );

      CREATE OR REPLACE FUNCTION wamt_webhook_emit(p_type text, p_agents text[], p_keys text[], p_data jsonb[])
      RETURNS void LANGUAGE plpgsql AS $fn$
      DECLARE
        inserted integer;
      BEGIN
        IF cardinality(p_agents) = 0 OR NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE enabled) THEN
          RETURN;
        END IF;
        WITH rows AS (
          INSERT INTO webhook_events (event_id, type, agent_id, order_key, payload)
          SELECT ev.event_id, p_type, ev.agent_id, ev.order_key,
            jsonb_build_object('id', ev.event_id, 'type', p_type,
              'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
              'agentId', ev.agent_id, 'data', ev.data)
          FROM (
            SELECT 'evt_' || replace(gen_random_uuid()::text, '-', '') AS event_id, u.agent_id, u.order_key, u.data,
              u.ord
            FROM unnest(p_agents, p_keys, p_data) WITH ORDINALITY AS u (agent_id, order_key, data, ord)
          ) ev
          WHERE EXISTS (
            SELECT 1 FROM webhook_endpoints e
            WHERE e.enabled AND (e.agent_id = ev.agent_id OR e.agent_id IS NULL)
              AND (e.events IS NULL OR p_type = ANY (e.events)))
          ORDER BY ev.ord
          RETURNING 1
        )
        SELECT count(*) INTO inserted FROM rows;
        IF inserted > 0 THEN
          PERFORM pg_notify('wamt_webhooks', '');
        END IF;
      END
      $fn$;

      -- Up to p_limit events, oldest first, become one delivery per enabled endpoint that takes them; returns how many
      -- events were expanded, or -1 when another member is expanding (it will take these too).
      CREATE OR REPLACE FUNCTION wamt_webhook_fan_out(p_limit integer) RETURNS integer LANGUAGE plpgsql AS $fn$
      DECLARE
        taken integer;
        inserted integer;
      BEGIN
        IF NOT pg_try_advisory_xact_lock(7412500901) THEN
          RETURN -1;
        END IF;
        WITH ev AS MATERIALIZED (
          DELETE FROM webhook_events
          WHERE seq IN (SELECT seq FROM webhook_events ORDER BY seq LIMIT p_limit)
          RETURNING *
        ), rows AS (
          INSERT INTO webhook_deliveries (id, event_id, endpoint_id, agent_id, type, order_key, payload)
          SELECT 'whd_' || replace(gen_random_uuid()::text, '-', ''), ev.event_id, e.id, ev.agent_id, ev.type,
            ev.order_key, ev.payload
          FROM ev JOIN webhook_endpoints e
            ON e.enabled AND (e.agent_id = ev.agent_id OR e.agent_id IS NULL)
              AND (e.events IS NULL OR ev.type = ANY (e.events))
          ORDER BY ev.seq, e.id
          RETURNING 1
        )
        SELECT (SELECT count(*) FROM ev), (SELECT count(*) FROM rows) INTO taken, inserted;
        IF inserted > 0 THEN
          PERFORM pg_notify('wamt_webhooks', '');
        END IF;
        RETURN taken;
      END
      $fn$;
    `,
  },
  {
    id: '0015_outbox_media_before_row',
    // An outbound file's chunks are written before its row, each chunk its own commit, no longer in the row's
    // transaction (outbox.repository.ts, writeWithMedia): on PGlite, the one connection that every agent shares was
    // held for the whole file, and other agents' sends timed out behind a 100 MB upload. The file is whole and durable
    // before its row exists, so a chunk can no longer reference the row: the foreign key goes. Chunks of no row (a
    // crash between the two, a row deleted with its agent) are purged an hour after they were written (created_at).
    sql: `
      ALTER TABLE outbox_media_chunks DROP CONSTRAINT IF EXISTS outbox_media_chunks_message_id_fkey;
      ALTER TABLE outbox_media_chunks ADD COLUMN IF NOT EXISTS created_at timestamptz NOT NULL DEFAULT now();
    `,
  },
  {
    id: '0016_webhook_endpoint_agent',
    // An agent's webhook endpoints go with the agent through a foreign key, not only through the delete trigger
    // (0008): an endpoint created while its agent was being deleted (the trigger could not see the uncommitted row)
    // survived with no agent, and an agent created again later with that id, maybe for another user, would have
    // had its messages sent there. Endpoints left by that race before now go first.
    sql: `
      DELETE FROM webhook_endpoints e
      WHERE e.agent_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM whatsapp_user u WHERE u.agent_id = e.agent_id);
      ALTER TABLE webhook_endpoints ADD CONSTRAINT webhook_endpoints_agent_id_fkey
        FOREIGN KEY (agent_id) REFERENCES whatsapp_user (agent_id) ON DELETE CASCADE;
    `,
  },
];

/** The shared api_keys table is managed elsewhere; a database without it gets this one (migrate.ts), to stand alone. */
export const EMBEDDED_API_KEYS_SQL = `
  CREATE TABLE IF NOT EXISTS api_keys (
    id serial PRIMARY KEY,
    user_id text NOT NULL,
    access_token text NOT NULL,
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
  );
  CREATE INDEX IF NOT EXISTS api_keys_user_id ON api_keys (user_id);
`;
