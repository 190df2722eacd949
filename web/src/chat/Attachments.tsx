import { api, uploadForm } from '../api.js';
import type { KnowledgeFile } from '../knowledge/types.js';
import type { DraftDoc, DraftImage } from './store.js';

/**
 * Images in the composer (issue 20): picked, pasted or dropped files are checked here (type,
 * size, count — the server checks again from the bytes), previewed as data URLs (the CSP allows
 * `data:` images, not `blob:`), and uploaded to the conversation when the message is sent.
 */
export const IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/gif', 'image/webp'];
export const MAX_IMAGE_BYTES = 5 * 1024 * 1024;
export const MAX_IMAGES = 4;

const readDataUrl = (f: File) =>
  new Promise<string>((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result));
    r.onerror = () => reject(r.error);
    r.readAsDataURL(f);
  });

/** Documents the chat indexes for the conversation (the knowledge API parses them). */
const DOC_EXT = /\.(pdf|docx|html?|md|markdown|txt|csv)$/i;
export const isDocument = (f: File) => DOC_EXT.test(f.name);

/** The files that may be added to `current`, with a sentence for each one refused. */
export async function acceptImages(files: readonly File[], current: readonly DraftImage[], docsAllowed = false): Promise<{ images: DraftImage[]; docs: DraftDoc[]; problems: string[] }> {
  const images: DraftImage[] = [];
  const docs: DraftDoc[] = [];
  const problems: string[] = [];
  for (const f of files) {
    if (docsAllowed && isDocument(f)) docs.push({ key: `${Date.now()}-${Math.random()}`, name: f.name, file: f });
    else if (!IMAGE_TYPES.includes(f.type)) problems.push(`${f.name || 'The file'} is not ${docsAllowed ? 'an image (PNG, JPEG, GIF, WebP) or a document (PDF, Word, HTML, Markdown, text, CSV)' : 'a PNG, JPEG, GIF or WebP image'}.`);
    else if (f.size > MAX_IMAGE_BYTES) problems.push(`${f.name || 'The image'} is larger than 5 MB.`);
    else if (current.length + images.length >= MAX_IMAGES) problems.push(`At most ${MAX_IMAGES} images per message.`);
    else images.push({ key: `${Date.now()}-${Math.random()}`, name: f.name || 'pasted image', file: f, preview: await readDataUrl(f) });
  }
  return { images, docs, problems: [...new Set(problems)] };
}

/**
 * Uploads documents into the conversation's own collection and waits until each is indexed
 * (the worker's ingest lane); a document that cannot be read is an error naming it and why.
 */
export async function indexDocuments(convId: string, docs: readonly DraftDoc[], onStatus: (text: string | null) => void): Promise<DraftDoc[]> {
  const out: DraftDoc[] = [];
  try {
    for (const d of docs) {
      if (d.collectionId || !d.file) {
        out.push(d);
        continue;
      }
      const form = new FormData();
      form.append('file', d.file, d.name);
      onStatus(`Uploading ${d.name}…`);
      const r = await uploadForm<{ collection_id: string; file: KnowledgeFile }>(`/api/knowledge/conversations/${encodeURIComponent(convId)}/attachments`, form, () => undefined);
      onStatus(`Reading ${d.name}…`);
      let f = r.file;
      const deadline = Date.now() + 120_000;
      while (f.status === 'in_progress' && Date.now() < deadline) {
        await new Promise((ok) => setTimeout(ok, 500));
        f = await api<KnowledgeFile>(`/api/knowledge/collections/${encodeURIComponent(r.collection_id)}/files/${encodeURIComponent(f.id)}`);
      }
      if (f.status !== 'completed') throw new Error(`${d.name} could not be read${f.last_error ? `: ${f.last_error.message}` : ' in time'}.`);
      out.push({ ...d, collectionId: r.collection_id });
    }
  } finally {
    onStatus(null);
  }
  return out;
}

/** Uploads the images not uploaded yet (raw bytes) and returns them all with their ids. */
export async function uploadImages(convId: string, images: readonly DraftImage[]): Promise<DraftImage[]> {
  const out: DraftImage[] = [];
  for (const img of images) {
    if (img.id || !img.file) {
      out.push(img);
      continue;
    }
    const a = await api<{ id: string }>(`/api/chat/conversations/${encodeURIComponent(convId)}/attachments`, {
      body: img.file,
      headers: { 'content-type': img.file.type, 'x-file-name': encodeURIComponent(img.name) },
    });
    out.push({ ...img, id: a.id });
  }
  return out;
}

export function attachmentUrl(convId: string, id: string): string {
  return `/api/chat/conversations/${encodeURIComponent(convId)}/attachments/${encodeURIComponent(id)}`;
}

/** The images and documents waiting in the composer, each with a remove button. */
export function ImageTray({ images, docs = [], onRemove }: { images: readonly DraftImage[]; docs?: readonly DraftDoc[]; onRemove: (key: string) => void }) {
  if (!images.length && !docs.length) return null;
  return (
    <>
      {images.length ? (
        <ul className="image-tray" aria-label="Images to send">
          {images.map((i) => (
            <li key={i.key}>
              <img src={i.preview} alt={i.name} />
              <button type="button" className="btn btn-icon image-remove" aria-label={`Remove image ${i.name}`} onClick={() => onRemove(i.key)}>
                ×
              </button>
            </li>
          ))}
        </ul>
      ) : null}
      {docs.length ? (
        <ul className="doc-tray" aria-label="Documents to answer from">
          {docs.map((d) => (
            <li key={d.key} className="tag">
              {d.name}
              <button type="button" className="btn btn-icon" aria-label={`Remove document ${d.name}`} onClick={() => onRemove(d.key)}>
                ×
              </button>
            </li>
          ))}
        </ul>
      ) : null}
    </>
  );
}
