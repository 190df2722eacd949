import { api } from '../api.js';
import type { DraftImage } from './store.js';

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

/** The files that may be added to `current`, with a sentence for each one refused. */
export async function acceptImages(files: readonly File[], current: readonly DraftImage[]): Promise<{ images: DraftImage[]; problems: string[] }> {
  const images: DraftImage[] = [];
  const problems: string[] = [];
  for (const f of files) {
    if (!IMAGE_TYPES.includes(f.type)) problems.push(`${f.name || 'The file'} is not a PNG, JPEG, GIF or WebP image.`);
    else if (f.size > MAX_IMAGE_BYTES) problems.push(`${f.name || 'The image'} is larger than 5 MB.`);
    else if (current.length + images.length >= MAX_IMAGES) problems.push(`At most ${MAX_IMAGES} images per message.`);
    else images.push({ key: `${Date.now()}-${Math.random()}`, name: f.name || 'pasted image', file: f, preview: await readDataUrl(f) });
  }
  return { images, problems: [...new Set(problems)] };
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

/** The images waiting in the composer, each with a remove button. */
export function ImageTray({ images, onRemove }: { images: readonly DraftImage[]; onRemove: (key: string) => void }) {
  if (!images.length) return null;
  return (
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
  );
}
