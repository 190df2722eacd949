import type { ChatMessageView, ConversationView } from '../api.js';

/** A conversation as Markdown: title, then each turn under who said it (not-sent turns marked). */
export function toMarkdown(c: ConversationView, messages: ChatMessageView[]): string {
  const lines = [`# ${c.title}`, ''];
  if (c.model || c.classification) lines.push(`*${[c.model && `Model: ${c.model}`, c.classification && `Classification: ${c.classification}`].filter(Boolean).join(' · ')}*`, '');
  // The current answers only; earlier versions (superseded by a regenerate) and other branches are in the JSON export.
  for (const m of messages.filter((x) => x.status !== 'superseded')) {
    const who = m.role === 'user' ? 'You' : m.role === 'assistant' ? (m.model ?? 'Assistant') : 'System';
    const mark = m.status === 'complete' ? '' : ` (${m.status.replace('_', ' ')})`;
    lines.push(`## ${who}${mark}`, '', m.content, '');
  }
  return lines.join('\n');
}

/** The JSON export: the API's own shapes, so it can be read back by tools. */
export function toJson(c: ConversationView, messages: ChatMessageView[]): string {
  return JSON.stringify({ ...c, messages, exported_at: new Date().toISOString() }, null, 2);
}

export function fileName(c: ConversationView, ext: string): string {
  const base = c.title.replace(/[^\p{L}\p{N}]+/gu, '-').replace(/^-+|-+$/g, '').slice(0, 60) || 'conversation';
  return `${base}.${ext}`;
}

/** Saves text as a file (an object URL and a download link; nothing leaves the browser). */
export function download(name: string, type: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
