// Live check with a real phone: one session on a real engine, its QR code in the terminal, text messages echoed back.
//
// Usage (not run in CI; it needs a phone and WhatsApp's servers):
//
//   npm run live                      # the engine from WA_ENGINE (default whatsapp-web)
//   npm run live -- baileys           # or name it: whatsapp-web | baileys
//   npm run live -- baileys --pair 6281234567890   # a pairing code instead of the QR code
//
// Configuration comes from the environment and .env as for the service: DATA_DIR, WWEBJS_AUTH_DIR, CHROME_PATH,
// DB_URL (baileys keeps its login there; without it an embedded PGlite in DATA_DIR), LOG_LEVEL. The agent id is
// `live` unless LIVE_AGENT_ID is set. Scan the QR with WhatsApp > Linked devices; the login is kept, so the next run
// resumes without a QR. Send the account a text from another phone and it answers "echo: <text>". Messages from
// groups are echoed only when they mention the account. Ctrl-C stops the session and keeps the login; pass
// --logout to unlink the device on exit instead.
import process from 'node:process';
import QRCode from 'qrcode';
import { loadConfig, readEnvFile } from '../src/config.js';
import { openDatabase } from '../src/db/client.js';
import { migrate } from '../src/db/migrate.js';
import { createBaileysEngine } from '../src/engines/baileys/baileys.engine.js';
import type { Engine, EngineIdentity } from '../src/engines/engine.js';
import { createWhatsappWebEngine } from '../src/engines/whatsapp-web/whatsapp-web.engine.js';
import { createLogger } from '../src/observability/logger.js';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const env = { ...readEnvFile(), ...process.env };
  const config = loadConfig(env);
  const engineName = args.find((arg) => !arg.startsWith('--') && !/^\+?\d+$/.test(arg)) ?? config.waEngine;
  const pairIndex = args.indexOf('--pair');
  const pairPhone = pairIndex >= 0 ? args[pairIndex + 1] : undefined;
  const logoutOnExit = args.includes('--logout');
  const agentId = env.LIVE_AGENT_ID ?? 'live';
  const logger = createLogger({ level: config.logLevel, pretty: Boolean(process.stdout.isTTY) });

  let engine: Engine;
  let closeDatabase = async () => {};
  if (engineName === 'whatsapp-web') {
    engine = createWhatsappWebEngine({ authDir: config.wwebjsAuthDir, chromePath: config.chromePath, logger });
  } else if (engineName === 'baileys') {
    const database = await openDatabase(config.dbUrl ? { url: config.dbUrl } : { dataDir: `${config.dataDir}/pglite` });
    await migrate(database);
    closeDatabase = () => database.close();
    engine = createBaileysEngine({ database, logger });
  } else {
    throw new Error(`unknown engine "${engineName}": use whatsapp-web or baileys`);
  }

  console.log(`engine ${engine.name}, agent ${agentId}, stored login: ${await engine.hasStoredLogin(agentId)}`);
  const session = engine.createSession(agentId, { logger: logger.child({ agentId }) });
  let me: EngineIdentity | null = null;
  let pairingRequested = false;

  session.on('qr', async (qr) => {
    if (pairPhone && session.requestPairingCode && !pairingRequested) {
      pairingRequested = true;
      await session.requestPairingCode(pairPhone).catch((error: unknown) => console.error('pairing failed:', error));
      return;
    }
    if (pairPhone) return;
    console.log(await QRCode.toString(qr, { type: 'terminal', small: true }));
    console.log('Scan this with WhatsApp > Linked devices (a new code replaces it every ~20 s).');
  });
  session.on('pairing_code', (code) => console.log(`Pairing code for ${pairPhone}: ${code}`));
  session.on('authenticated', () => console.log('authenticated'));
  session.on('ready', (identity) => {
    me = identity;
    console.log(`ready as ${identity.me}${identity.lid ? ` (${identity.lid})` : ''}; send it a text to get an echo`);
  });
  session.on('auth_failure', (message) => console.error(`auth failure: ${message}`));
  session.on('disconnected', ({ reason, loggedOut }) => {
    console.error(`disconnected: ${reason}${loggedOut ? ' (logged out)' : ''}`);
    if (loggedOut) return void shutdown(1);
    console.log('reconnecting in 5 s…');
    setTimeout(() => void session.start().catch((error: unknown) => console.error('restart failed:', error)), 5_000);
  });
  session.on('message', async (message) => {
    console.log(`${message.fromMe ? '→' : '←'} ${message.chatJid} ${message.pushName ?? ''}: ${message.text}`);
    const mentionsMe = me !== null && message.mentions.some((jid) => jid === me?.me || jid === me?.lid);
    const echo =
      !message.fromMe &&
      message.type === 'text' &&
      message.text !== '' &&
      !message.chatJid.endsWith('@broadcast') &&
      !message.chatJid.endsWith('@newsletter') &&
      (!message.isGroup || mentionsMe);
    if (!echo) return;
    try {
      await session.setTyping?.(message.chatJid, true);
      await session.sendText(message.chatJid, `echo: ${message.text}`, { quotedMessageId: message.id });
      await session.setTyping?.(message.chatJid, false);
    } catch (error) {
      console.error('echo failed:', error);
    }
  });

  let stopping = false;
  async function shutdown(code: number): Promise<void> {
    if (stopping) return;
    stopping = true;
    console.log(logoutOnExit ? 'logging out…' : 'stopping (the login is kept)…');
    await (logoutOnExit ? session.logout() : session.stop()).catch((error: unknown) => console.error(error));
    await engine.close?.();
    await closeDatabase();
    process.exit(code);
  }
  process.once('SIGINT', () => void shutdown(0));
  process.once('SIGTERM', () => void shutdown(0));

  await session.start();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
