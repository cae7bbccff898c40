import { describe, expect, it } from 'vitest';
import type { EngineIdentity, InboundMessage } from '../engines/engine.js';
import { type FilterVerdict, filterInbound } from './inbound-filter.js';

const BOT: EngineIdentity = { me: '6281100000000@c.us', lid: '99887766554433@lid' };
const GROUP = '120363025000000001@g.us';

const message = (overrides: Partial<InboundMessage> = {}): InboundMessage => ({
  id: 'MSG1',
  chatJid: '6281234567890@c.us',
  senderJid: '6281234567890@c.us',
  text: 'hello',
  type: 'text',
  isGroup: false,
  mentions: [],
  fromMe: false,
  timestamp: 0,
  pushName: 'Ann',
  chatName: null,
  ...overrides,
});

const inGroup = (overrides: Partial<InboundMessage>) =>
  message({ chatJid: GROUP, isGroup: true, senderJid: '6281234567890@c.us', ...overrides });

const PASS: FilterVerdict = { pass: true };
const no = (reason: string) => ({ pass: false, reason });

describe('filterInbound', () => {
  it.each<[string, InboundMessage, FilterVerdict | ReturnType<typeof no>, EngineIdentity?]>([
    ['a private text passes', message(), PASS],
    ['a private text from a LID chat passes', message({ chatJid: '123456789012@lid' }), PASS],
    ['a status update is ignored', message({ chatJid: 'status@broadcast' }), no('status')],
    ['a broadcast list is ignored', message({ chatJid: '1234567890@broadcast' }), no('broadcast')],
    ['a channel is ignored', message({ chatJid: '120363000000000000@newsletter' }), no('channel')],
    ['our own message is ignored', message({ fromMe: true }), no('from_me')],
    ['an image is ignored, even with a caption', message({ type: 'image', text: 'look' }), no('not_text')],
    ['a sticker is ignored', message({ type: 'sticker', text: '' }), no('not_text')],
    ['an empty text is ignored', message({ text: '   ' }), no('empty')],
    ['a group message without mention is ignored', inGroup({ text: 'hi all' }), no('not_mentioned')],
    ['a group message mentioning the JID passes', inGroup({ mentions: ['6281100000000@c.us'] }), PASS],
    [
      'a group message mentioning the JID in another suffix passes',
      inGroup({ mentions: ['6281100000000:12@s.whatsapp.net'] }),
      PASS,
    ],
    ['a group message mentioning the LID passes', inGroup({ mentions: ['99887766554433@lid'] }), PASS],
    ['a group message mentioning someone else is ignored', inGroup({ mentions: ['628999@c.us'] }), no('not_mentioned')],
    ['a group message with the number in the text passes', inGroup({ text: 'hey @6281100000000 help' }), PASS],
    ['a group message with the LID digits in the text passes', inGroup({ text: '@99887766554433 help' }), PASS],
    [
      'a group message when the bot has no LID only matches its number',
      inGroup({ mentions: ['99887766554433@lid'] }),
      no('not_mentioned'),
      { me: BOT.me, lid: null },
    ],
    [
      'our own group message is ignored even with a mention',
      inGroup({ fromMe: true, text: '@6281100000000' }),
      no('from_me'),
    ],
  ])('%s', (_name, input, expected, identity = BOT) => {
    expect(filterInbound(input, identity)).toEqual(expected);
  });

  describe('with AI_FORWARD_TYPES', () => {
    const types = new Set(['text', 'image', 'audio', 'document', 'location'] as const);
    it.each<[string, InboundMessage, FilterVerdict | ReturnType<typeof no>]>([
      ['an image with a caption passes', message({ type: 'image', text: 'look' }), PASS],
      ['a voice note without text passes', message({ type: 'audio', text: '' }), PASS],
      ['a location passes', message({ type: 'location', text: '' }), PASS],
      ['a video is ignored when not listed', message({ type: 'video', text: 'clip' }), no('not_text')],
      ['an empty text is still ignored', message({ text: ' ' }), no('empty')],
      ['an image in a group still needs a mention', inGroup({ type: 'image', text: 'for all' }), no('not_mentioned')],
      [
        'an image in a group that mentions the bot passes',
        inGroup({ type: 'image', text: '', mentions: ['6281100000000@c.us'] }),
        PASS,
      ],
      ['a status image is still ignored', message({ type: 'image', chatJid: 'status@broadcast' }), no('status')],
    ])('%s', (_name, input, expected) => {
      expect(filterInbound(input, BOT, types)).toEqual(expected);
    });
  });
});
