import { AppError } from '../errors.js';

/**
 * Document parsing for ingestion (issue 20): PDF (unpdf, PDF.js), DOCX (mammoth), HTML (the
 * readable text: scripts, styles and page chrome dropped, headings kept as Markdown headings),
 * Markdown, plain text, CSV. The type is decided from the file name's extension at upload (any
 * other type is refused there with a clear error); the bytes are checked when parsing (a PDF
 * must start with %PDF-, a DOCX is a zip, text must be UTF-8): a file of an accepted type that
 * cannot be read fails its ingestion with ParseError's reason.
 *
 * The parsers are loaded on first use: the API process that never ingests does not pay for
 * PDF.js.
 */
export const CONTENT_TYPES = {
  pdf: 'application/pdf',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  html: 'text/html',
  md: 'text/markdown',
  txt: 'text/plain',
  csv: 'text/csv',
} as const;
export type DocKind = keyof typeof CONTENT_TYPES;

const EXTENSIONS: Record<string, DocKind> = {
  pdf: 'pdf',
  docx: 'docx',
  html: 'html',
  htm: 'html',
  md: 'md',
  markdown: 'md',
  txt: 'txt',
  text: 'txt',
  csv: 'csv',
  json: 'txt',
};

export const ACCEPTED = 'PDF (.pdf), Word (.docx), HTML (.html), Markdown (.md), plain text (.txt) and CSV (.csv)';

/** A page of text (page is 1-based for PDFs, null for formats without pages). */
export interface Section {
  readonly page: number | null;
  readonly text: string;
}

export interface Parsed {
  readonly sections: Section[];
  /** Pages of a PDF, else null. */
  readonly pages: number | null;
}

/** A file of an accepted type whose content cannot be read. */
export class ParseError extends Error {
  override readonly name = 'ParseError';
}

/** The kind of an upload, or a 400 naming the accepted types. */
export function detectKind(filename: string | undefined): DocKind {
  const ext = /\.([A-Za-z0-9]+)$/.exec(filename ?? '')?.[1]?.toLowerCase();
  const kind = ext ? EXTENSIONS[ext] : undefined;
  if (!kind) {
    throw new AppError(400, 'unsupported_file_type', `Files of this type cannot be indexed${ext ? ` (.${ext})` : ''}; accepted: ${ACCEPTED}.`, { param: 'file' });
  }
  return kind;
}

export async function parseDocument(kind: DocKind, data: Buffer, o: { maxPages: number }): Promise<Parsed> {
  switch (kind) {
    case 'pdf':
      return parsePdf(data, o.maxPages);
    case 'docx':
      return { sections: [{ page: null, text: await docxText(data) }], pages: null };
    case 'html':
      return { sections: [{ page: null, text: htmlText(utf8(data)) }], pages: null };
    default:
      return { sections: [{ page: null, text: utf8(data) }], pages: null };
  }
}

function utf8(data: Buffer): string {
  const text = new TextDecoder('utf-8', { fatal: false }).decode(data);
  if (text.includes('\uFFFD') && !Buffer.from(text, 'utf8').equals(data)) throw new ParseError('The file is not UTF-8 text.');
  return text.replace(/^\uFEFF/, '');
}

async function parsePdf(data: Buffer, maxPages: number): Promise<Parsed> {
  if (data.subarray(0, 1024).indexOf('%PDF-') < 0) throw new ParseError('The file is not a PDF (no %PDF- header).');
  const { getDocumentProxy } = await import('unpdf');
  let doc: Awaited<ReturnType<typeof getDocumentProxy>>;
  try {
    // verbosity 0: PDF.js would print warnings about broken files to stdout.
    doc = await getDocumentProxy(new Uint8Array(data), { verbosity: 0 });
  } catch (e) {
    throw new ParseError(`The PDF cannot be read: ${(e as Error).message}`);
  }
  try {
    if (doc.numPages > maxPages) throw new ParseError(`The PDF has ${doc.numPages} pages; the limit is ${maxPages} (ENCLAVE_KNOWLEDGE_MAX_PAGES).`);
    const sections: Section[] = [];
    for (let i = 1; i <= doc.numPages; i++) {
      let text: string;
      try {
        const page = await doc.getPage(i);
        const content = await page.getTextContent();
        // Items carry hasEOL where a line ends: keep lines, so paragraphs and headings survive.
        text = content.items.map((it) => ('str' in it ? it.str + (it.hasEOL ? '\n' : '') : '')).join('');
      } catch (e) {
        throw new ParseError(`Page ${i} of the PDF cannot be read: ${(e as Error).message}`);
      }
      sections.push({ page: i, text });
    }
    if (!sections.some((s) => s.text.trim())) throw new ParseError('The PDF has no text layer (scanned pages are not read: OCR is not part of Enclave).');
    return { sections, pages: doc.numPages };
  } finally {
    await doc.loadingTask.destroy().catch(() => {});
  }
}

async function docxText(data: Buffer): Promise<string> {
  if (data.subarray(0, 2).toString('latin1') !== 'PK') throw new ParseError('The file is not a Word document (.docx is a zip archive).');
  const mammoth = (await import('mammoth')).default;
  try {
    const r = await mammoth.extractRawText({ buffer: data });
    return r.value;
  } catch (e) {
    throw new ParseError(`The Word document cannot be read: ${(e as Error).message}`);
  }
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };

/**
 * The readable text of an HTML page: what a reader sees in the main content. Drops scripts,
 * styles, templates, comments and page chrome (nav, header, footer, aside, form); keeps
 * headings as Markdown headings (the chunker splits on them) and block elements as paragraphs.
 */
export function htmlText(html: string): string {
  let s = html.replace(/<!--[\s\S]*?-->/g, ' ');
  s = s.replace(/<(script|style|template|noscript|svg|nav|header|footer|aside|form)\b[\s\S]*?<\/\1\s*>/gi, ' ');
  const main = /<(main|article)\b[^>]*>([\s\S]*?)<\/\1\s*>/i.exec(s);
  if (main) s = main[2]!;
  s = s.replace(/<h([1-6])\b[^>]*>([\s\S]*?)<\/h\1\s*>/gi, (_m, n: string, inner: string) => `\n\n${'#'.repeat(Number(n))} ${inner.replace(/<[^>]*>/g, ' ').trim()}\n\n`);
  s = s.replace(/<(br)\b[^>]*>/gi, '\n');
  s = s.replace(/<\/?(p|div|section|li|ul|ol|tr|table|blockquote|pre|dd|dt|dl)\b[^>]*>/gi, '\n\n');
  s = s.replace(/<\/?(td|th)\b[^>]*>/gi, ' ');
  s = s.replace(/<[^>]*>/g, '');
  s = s.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (m, e: string) => {
    if (e[0] === '#') {
      const code = e[1] === 'x' || e[1] === 'X' ? Number.parseInt(e.slice(2), 16) : Number(e.slice(1));
      return Number.isFinite(code) && code > 0 && code < 0x110000 ? String.fromCodePoint(code) : m;
    }
    return ENTITIES[e.toLowerCase()] ?? m;
  });
  return s
    .split('\n')
    .map((l) => l.replace(/[ \t]+/g, ' ').trim())
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}
