import type { ReactNode } from 'react';
import type { ChatModelsView, ChatMessageView, Classification, ConversationView } from '../api.js';
import { boundaryLabel, BoundaryBadge, formatCost, formatNumber } from '../components/ui.js';
import { CLASS_LABEL } from './explain.js';
import { download, fileName, toJson, toMarkdown } from './export.js';

const CLASSES: Classification[] = ['public', 'internal', 'confidential', 'restricted'];

/** The open conversation's title, usage and export, and the model and classification pickers. */
export function ChatHeader(props: {
  current: (ConversationView & { messages: ChatMessageView[] }) | null;
  conversationId: string | null;
  models: ChatModelsView | null;
  model: string;
  onModel: (m: string) => void;
  cls: Classification;
  onCls: (c: Classification) => void;
  busy: boolean;
  drawer: boolean;
  onDrawer: () => void;
  /** The assistant picker of a new chat, or the open conversation's assistant. */
  assistant?: ReactNode;
  /** The branch being viewed (with each turn's current answer): what the Markdown export holds; the JSON export has every message. */
  branch: ChatMessageView[];
  /** The assistant's classification: the chat is sent at least as that (lower ones are not offered). */
  minCls?: Classification | null | undefined;
}) {
  const { current, conversationId, models, model, cls, busy, drawer, onModel, onCls, onDrawer } = props;
  const currentModel = models?.data.find((m) => m.id === model);
  return (
    <div className="chat-head">
      <button type="button" className="btn drawer-toggle" aria-controls="chat-side" aria-expanded={drawer} onClick={() => onDrawer()}>
        <span aria-hidden="true">☰</span> Chats
      </button>
      <div className="chat-heading">
        <h1 id="chat-title" className="chat-title" tabIndex={-1}>
          {current?.title ?? (conversationId ? '' : 'New chat')}
        </h1>
        {current ? (
          <p className="chat-usage" data-testid="conversation-usage" aria-live="polite">
            <span className="sr-only">This conversation: </span>
            <span data-testid="conversation-tokens">{formatNumber(current.usage.prompt_tokens + current.usage.completion_tokens)} tokens</span>
            {' · '}
            <span data-testid="conversation-cost" title="Metered cost of this conversation (prices set by your administrators)">
              {formatCost(current.usage.cost_micros)}
            </span>
          </p>
        ) : null}
      </div>
      {current && current.messages.length ? (
        <details className="menu">
          <summary className="btn btn-small">Export</summary>
          <div className="menu-items">
            <button type="button" className="btn btn-small btn-ghost" onClick={() => download(fileName(current, 'md'), 'text/markdown', toMarkdown(current, props.branch))}>
              Markdown (.md)
            </button>
            <button type="button" className="btn btn-small btn-ghost" onClick={() => download(fileName(current, 'json'), 'application/json', toJson(current, current.messages))}>
              JSON (.json)
            </button>
          </div>
        </details>
      ) : null}
      <div className="chat-controls">
        {props.assistant}
        <label className="inline-field">
          <span>Model</span>
          <select value={model} onChange={(e) => onModel(e.target.value)} disabled={!models || models.data.length === 0 || busy} aria-describedby="model-boundary">
            {models?.data.length === 0 ? <option value="">No models available</option> : null}
            {models?.data.map((m) => (
              <option key={m.id} value={m.id}>
                {m.id} — {m.boundaries.map(boundaryLabel).join(', ')}
                {m.vision ? ' · images' : ''}
              </option>
            ))}
          </select>
        </label>
        <span id="model-boundary" className="badges">
          <span className="sr-only">Data boundary: </span>
          {currentModel?.boundaries.map((b) => <BoundaryBadge key={b} boundary={b} />)}
        </span>
        <label className="inline-field">
          <span>Data classification</span>
          <select value={cls} onChange={(e) => onCls(e.target.value as Classification)} disabled={busy}>
            {CLASSES.map((c) => (
              <option key={c} value={c} disabled={!!props.minCls && CLASSES.indexOf(c) < CLASSES.indexOf(props.minCls)}>
                {CLASS_LABEL[c]}
                {models?.default_classification === c ? ' (default)' : ''}
              </option>
            ))}
          </select>
        </label>
      </div>
    </div>
  );
}
