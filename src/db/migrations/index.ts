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
