import { describe, expect, it } from 'vitest';
import { sniffImage, withImages } from '../../server/chat/attachments.js';
import { KIND_SPECS } from '../../server/providers/kinds.js';
import { htmlPattern } from '../../web/src/pages/admin/html-pattern.js';

/** Chat images: the type comes from the bytes; the OpenAI message shape; the provider form's patterns in browsers. */
describe('chat attachments', () => {
  it('reads the image type from the magic bytes and refuses anything else (SVG, text, truncated)', () => {
    expect(sniffImage(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0]))).toBe('image/png');
    expect(sniffImage(Buffer.from([0xff, 0xd8, 0xff, 0xe0]))).toBe('image/jpeg');
    expect(sniffImage(Buffer.from('GIF89a....', 'latin1'))).toBe('image/gif');
    expect(sniffImage(Buffer.from('RIFF\0\0\0\0WEBPVP8 ', 'latin1'))).toBe('image/webp');
    for (const bad of ['<svg xmlns="http://www.w3.org/2000/svg"/>', '<?xml version="1.0"?><svg/>', 'hello', '\x89PNG', 'RIFF\0\0\0\0WAVE']) expect(sniffImage(Buffer.from(bad, 'latin1'))).toBeNull();
    expect(sniffImage(Buffer.alloc(0))).toBeNull();
  });

  it('puts images after the text as image_url parts (data URLs); a message without images is unchanged', () => {
    const row = { mime: 'image/png', data: 'AAAA' } as Parameters<typeof withImages>[1][number];
    expect(withImages({ role: 'user', content: 'hi' }, [])).toEqual({ role: 'user', content: 'hi' });
    expect(withImages({ role: 'user', content: 'what is this?' }, [row])).toEqual({
      role: 'user',
      content: [
        { type: 'text', text: 'what is this?' },
        { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } },
      ],
    });
    expect(withImages({ role: 'user', content: '' }, [row])).toEqual({ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }] });
  });

  it("every provider kind's pattern compiles as browsers compile the pattern attribute (v flag) and matches the same values", () => {
    for (const spec of Object.values(KIND_SPECS)) {
      for (const f of spec.fields) {
        if (!f.pattern) continue;
        const browser = new RegExp(`^(?:${htmlPattern(f.pattern)})$`, 'v');
        const server = new RegExp(f.pattern);
        for (const v of ['acme-eu', 'my-project-123', '2024-10-21', '2024-10-21-preview', 'Bad Value', '-x']) expect({ field: f.key, v, ok: browser.test(v) }).toEqual({ field: f.key, v, ok: server.test(v) });
      }
    }
  });
});
