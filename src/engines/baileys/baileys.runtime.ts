// Baileys loads on first use, so a process that runs other engines does not pay for it (about a second at startup).
type BaileysModule = typeof import('baileys');

let loaded: BaileysModule | undefined;

export async function loadBaileys(): Promise<BaileysModule> {
  loaded ??= await import('baileys');
  return loaded;
}

/** The module, for code that runs only after a session's start() has loaded it. */
export function loadedBaileys(): BaileysModule {
  if (!loaded) throw new Error('baileys: used before loadBaileys()');
  return loaded;
}
