// The engines a session can run on: the names the API, the configuration and the engine registry share.

export const ENGINE_NAMES = ['whatsapp-web', 'baileys', 'sandbox'] as const;
export type EngineName = (typeof ENGINE_NAMES)[number];
