import { describe, expect, it, vi } from 'vitest';
import { RecipientRejectedError } from './engine.js';
import { KnownRecipients } from './known-recipients.js';

describe('KnownRecipients', () => {
  it('asks once per number, refuses one that is not on WhatsApp, and never asks about groups or LIDs', async () => {
    const sut = new KnownRecipients();
    const yes = vi.fn(async () => true);
    await sut.check('6281234567890@c.us', yes);
    await sut.check('6281234567890@c.us', yes);
    expect(yes).toHaveBeenCalledTimes(1);
    const no = vi.fn(async () => false);
    const refused = await sut.check('6289999999999@c.us', no).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(RecipientRejectedError);
    expect(refused).toMatchObject({ reason: 'not_on_whatsapp', recipient: '6289999999999@c.us' });
    await expect(sut.check('6289999999999@c.us', no)).rejects.toThrow('not on WhatsApp'); // asked again
    await sut.check('120363025555555555@g.us', no);
    await sut.check('123456789012345@lid', no);
    expect(no).toHaveBeenCalledTimes(2);
  });

  it('lets the send go ahead when the look-up fails or knows nothing, and asks again next time', async () => {
    const sut = new KnownRecipients();
    const failing = vi.fn(async (): Promise<boolean> => {
      throw new Error('Evaluation failed');
    });
    await sut.check('6281234567890@c.us', failing);
    await sut.check('6281234567890@c.us', async () => undefined);
    await sut.check('6281234567890@c.us', failing);
    expect(failing).toHaveBeenCalledTimes(2);
  });

  it('forgets the oldest number once it holds `limit` of them', async () => {
    const sut = new KnownRecipients(2);
    const yes = vi.fn(async () => true);
    for (const n of [1, 2, 3]) await sut.check(`628100000000${n}@c.us`, yes);
    await sut.check('6281000000003@c.us', yes);
    await sut.check('6281000000001@c.us', yes);
    expect(yes).toHaveBeenCalledTimes(4);
  });
});
