// Boots the real entry point (src/main.ts) as a child process, as `npm start` does. The first boot creates a
// PGlite database from scratch (initdb in WebAssembly), which takes several seconds on a loaded 2-core machine.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDataDir, removeDir } from './helpers/app.js';

interface Booted {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function boot(env: Record<string, string>): Booted {
  let output = '';
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', NODE_ENV: 'production', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

async function waitForLog(booted: Booted, pattern: RegExp, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(booted.output())) {
    if (Date.now() > deadline) throw new Error(`no ${pattern} in output:\n${booted.output()}`);
    if (booted.child.exitCode !== null) throw new Error(`exited early:\n${booted.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the service binary', () => {
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await createTestDataDir();
  });
  afterAll(() => removeDir(dataDir));

  it('stops at boot with one message listing every configuration problem', async () => {
    const booted = boot({ PORT: 'x', WA_ENGINE: 'nope', DATA_DIR: dataDir });
    expect(await booted.exited).toBe(1);
    expect(booted.output()).toContain('PORT:');
    expect(booted.output()).toContain('WA_ENGINE:');
  });

  it('starts on the embedded database with no other setup, generates an admin key, and stops on SIGTERM', async () => {
    const port = String(20_000 + Math.floor(Math.random() * 20_000));
    const booted = boot({ PORT: port, HOST: '127.0.0.1', DATA_DIR: dataDir });
    try {
      await waitForLog(booted, /"event":"service.started"/);
      const health = await fetch(`http://127.0.0.1:${port}/health/ready`);
      expect(health.status).toBe(200);
      expect(((await health.json()) as { checks: { database: string } }).checks.database).toBe('ok');
      const key = (await readFile(path.join(dataDir, 'admin-api-key'), 'utf8')).trim();
      expect(booted.output()).toContain('"event":"auth.admin_key.generated"');
      expect(booted.output()).toContain(key); // logged once, so the operator can read it
      const unauthorized = await fetch(`http://127.0.0.1:${port}/sessions`);
      expect(unauthorized.status).toBe(401);
      const listed = await fetch(`http://127.0.0.1:${port}/sessions`, { headers: { authorization: `Bearer ${key}` } });
      expect(listed.status).toBe(200);
      booted.child.kill('SIGTERM');
      expect(await booted.exited).toBe(0);
      expect(booted.output()).toContain('"event":"service.stopped"');
    } finally {
      booted.child.kill('SIGKILL');
    }
    // A second boot reuses the stored key and does not log it again.
    const again = boot({ PORT: port, HOST: '127.0.0.1', DATA_DIR: dataDir });
    try {
      await waitForLog(again, /"event":"service.started"/);
      expect(again.output()).not.toContain('auth.admin_key.generated');
    } finally {
      again.child.kill('SIGTERM');
      await again.exited;
    }
  }, 240_000);

  it('refuses a second process on the same DATA_DIR with the embedded database, saying why', async () => {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const first = boot({ PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir });
    try {
      await waitForLog(first, /"event":"service.started"/);
      const second = boot({ PORT: String(port + 1), HOST: '127.0.0.1', DATA_DIR: dataDir });
      expect(await second.exited).toBe(1);
      expect(second.output()).toContain(`DATA_DIR ${dataDir} is in use by another process of this service`);
      expect(second.output()).toContain(`pid ${first.child.pid}`);
      // The first one never noticed.
      expect((await fetch(`http://127.0.0.1:${port}/health/ready`)).status).toBe(200);
      first.child.kill('SIGTERM');
      expect(await first.exited).toBe(0);
    } finally {
      first.child.kill('SIGKILL');
    }
    // Stopped cleanly: the lock went with it.
    await expect(readFile(path.join(dataDir, 'instance.lock'), 'utf8')).rejects.toThrow();
  }, 240_000);
});
