import type { Section } from './parse.js';

/**
 * Chunking along structure (issue 20): text is cut into blocks at headings and blank lines
 * (paragraphs); a page boundary always ends a chunk (a citation names one page); blocks are packed into chunks of
 * at most `maxChars`, each new chunk starting with the last `overlapChars` of the previous one
 * (cut at a word) so a sentence split between chunks is found in either. A chunk records the
 * page it starts on (citations) and the heading it falls under (kept at the chunk's start when
 * the heading itself is not in it, so a passage keeps its context). A block longer than a
 * chunk is cut at sentence ends, then at words.
 *
 * Sizes in characters: OpenAI's default strategy is 800 tokens with 400 overlap; at ≈ 4
 * characters a token, `fromTokens` converts a chunking_strategy.
 */
export interface Chunk {
  readonly index: number;
  readonly page: number | null;
  readonly text: string;
}

export interface ChunkOptions {
  readonly maxChars: number;
  readonly overlapChars: number;
}

export const DEFAULT_CHUNKING = { maxTokens: 800, overlapTokens: 400 } as const;
export const CHARS_PER_TOKEN = 4;

export function fromTokens(maxTokens: number, overlapTokens: number): ChunkOptions {
  return { maxChars: maxTokens * CHARS_PER_TOKEN, overlapChars: overlapTokens * CHARS_PER_TOKEN };
}

interface Block {
  readonly page: number | null;
  readonly text: string;
  readonly heading: string | null;
}

const HEADING = /^(#{1,6}\s+\S.*|[A-Z0-9][^.!?:]{0,80})$/;

function blocksOf(sections: readonly Section[]): Block[] {
  const out: Block[] = [];
  let heading: string | null = null;
  for (const s of sections) {
    const paras = s.text.replace(/\r\n?/g, '\n').split(/\n\s*\n/);
    for (const raw of paras) {
      const text = raw
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean)
        .join('\n');
      if (!text) continue;
      // A short single line is a heading (Markdown `#`, or a title-like line of a PDF/DOCX).
      if (!text.includes('\n') && HEADING.test(text) && text.length <= 100) heading = text.replace(/^#+\s+/, '');
      out.push({ page: s.page, text, heading });
    }
  }
  return out;
}

/** Pieces of at most `max` characters: at sentence ends, else at spaces, else hard. */
function split(text: string, max: number): string[] {
  if (text.length <= max) return [text];
  const out: string[] = [];
  let rest = text;
  while (rest.length > max) {
    const window = rest.slice(0, max);
    let cut = Math.max(window.lastIndexOf('. '), window.lastIndexOf('\n'), window.lastIndexOf('? '), window.lastIndexOf('! '));
    if (cut < max / 3) cut = window.lastIndexOf(' ');
    if (cut < max / 3) cut = max - 1;
    out.push(rest.slice(0, cut + 1).trim());
    rest = rest.slice(cut + 1).trimStart();
  }
  if (rest) out.push(rest);
  return out;
}

/** The end of `text` of about `n` characters, starting at a word. */
function tail(text: string, n: number): string {
  if (n <= 0 || !text) return '';
  if (text.length <= n) return text;
  const t = text.slice(-n);
  const sp = t.search(/\s/);
  return sp >= 0 && sp < t.length - 1 ? t.slice(sp + 1) : t;
}

export function chunkSections(sections: readonly Section[], o: ChunkOptions): Chunk[] {
  const max = Math.max(100, o.maxChars);
  const overlap = Math.min(Math.max(0, o.overlapChars), Math.floor(max / 2));
  const chunks: Chunk[] = [];
  let cur = '';
  let curPage: number | null = null;
  let curHeading: string | null = null;
  let fresh = 0; // characters of new (non-overlap) text in cur
  const flush = (pageEnds = false): void => {
    if (fresh > 0 && cur.trim()) chunks.push({ index: chunks.length, page: curPage, text: cur.trim() });
    // The overlap stays within a page: a passage is cited with one page, and holds only its text.
    const carry = fresh > 0 && !pageEnds ? tail(cur, overlap) : '';
    cur = carry;
    fresh = 0;
  };
  for (const b of blocksOf(sections)) {
    for (const piece of split(b.text, max - overlap - 1)) {
      // A page ends a chunk: a citation names one page.
      if (fresh > 0 && b.page !== curPage) flush(true);
      else if (cur && cur.length + piece.length + 2 > max) flush();
      if (fresh === 0) {
        curPage = b.page;
        // A chunk that does not begin under its heading starts with it (context for the passage).
        if (b.heading && b.heading !== curHeading && piece !== b.heading && !cur.includes(b.heading) && cur.length + b.heading.length + piece.length + 4 <= max) {
          cur = cur ? `${b.heading}\n\n${cur}` : b.heading;
        }
        curHeading = b.heading;
      }
      cur = cur ? `${cur}\n\n${piece}` : piece;
      fresh += piece.length;
    }
  }
  flush();
  return chunks;
}
