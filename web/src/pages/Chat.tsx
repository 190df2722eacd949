import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { api, type ChatMessageView, type ChatModelsView, type Classification, type ConversationView } from '../api.js';
import { AssistantIntro, AssistantSelect, useAssistants, useStarter } from '../chat/AssistantPicker.js';
import { ChatHeader } from '../chat/ChatHeader.js';
import { ChatNotes, OutcomeNotes } from '../chat/ChatNotes.js';
import { useConversationActions } from '../chat/useConversationActions.js';
import { indexDocuments, uploadImages } from '../chat/Attachments.js';
import { Composer } from '../chat/Composer.js';
import { KnowledgePicker, loadCitations, useCollections } from '../chat/Knowledge.js';
import type { Citation } from '../knowledge/types.js';
import { ConversationList } from '../chat/ConversationList.js';
import { Messages } from '../chat/Messages.js';
import { thread, type Picks } from '../chat/thread.js';
import { clearOutcome, knowledgeOf, moveDraft, setKnowledge, onTurnFinished, outcomeOf, runTurn, setDraft, stop, streamOf, useChatStore, type Draft, type DraftImage, type SendMode } from '../chat/store.js';
import { ErrorNote } from '../components/ui.js';
import { navigate } from '../router.js';

type Loaded = ConversationView & { messages: ChatMessageView[] };

/** The chat: conversation list, the open conversation (streams live in chat/store), composer. */
export function ChatPage({ conversationId }: { conversationId: string | null }) {
  useChatStore();
  const [models, setModels] = useState<ChatModelsView | null>(null);
  const [modelsError, setModelsError] = useState<unknown>(null);
  const [convs, setConvs] = useState<ConversationView[] | null>(null);
  const [query, setQuery] = useState('');
  const [conv, setConv] = useState<Loaded | null>(null);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [model, setModel] = useState('');
  const [cls, setCls] = useState<Classification>('internal');
  const [error, setError] = useState<unknown>(null);
  const [drawer, setDrawer] = useState(false);
  /** The branch or answer version picked at each fork of the open conversation (absent: the newest). */
  const [picks, setPicks] = useState<Picks>({});
  const inputRef = useRef<HTMLTextAreaElement>(null);
  const assistants = useAssistants();
  const collections = useCollections();
  /** The open conversation's answers' citations (knowledge), by message id. */
  const [citations, setCitations] = useState<Record<string, Citation[]>>({});
  /** Attached documents being uploaded and indexed before the turn is sent. */
  const [docStatus, setDocStatus] = useState<string | null>(null);
  /** The assistant a new chat starts with (from "Start a chat" links: /chat?assistant=…). */
  const [assistantId, setAssistantId] = useState(() => new URLSearchParams(location.search).get('assistant') ?? '');
  /** The conversation the page shows now: answers for another one must not land here. */
  const wanted = useRef<string | null>(conversationId);
  wanted.current = conversationId;
  const current = conv && conv.id === conversationId ? conv : null;
  const stream = streamOf(conversationId);
  const outcome = outcomeOf(conversationId);

  useEffect(() => {
    api<ChatModelsView>('/api/chat/models')
      .then((m) => {
        setModels(m);
        setCls((c) => (wanted.current ? c : m.default_classification));
        setModel((cur) => cur || m.data[0]?.id || '');
      })
      .catch(setModelsError);
  }, []);

  const loadList = useCallback(async (q: string) => {
    try {
      setConvs((await api<{ data: ConversationView[] }>(`/api/chat/conversations${q ? `?q=${encodeURIComponent(q)}` : ''}`)).data);
    } catch (e) {
      setLoadError(e);
    }
  }, []);
  useEffect(() => {
    const t = setTimeout(() => void loadList(query.trim()), query ? 200 : 0);
    return () => clearTimeout(t);
  }, [query, loadList]);

  const load = useCallback(async (id: string) => {
    try {
      const c = await api<Loaded>(`/api/chat/conversations/${encodeURIComponent(id)}`);
      if (wanted.current !== id) return; // the user has moved on
      setConv(c);
      // Only where knowledge exists: without it there is nothing to cite (and no API to ask).
      setCitations(collections !== null && c.messages.some((m) => m.role === 'assistant') ? await loadCitations(id) : {});
      if (c.model) setModel(c.model);
      if (c.classification) setCls(c.classification as Classification);
      setLoadError(null);
    } catch (e) {
      if (wanted.current !== id) return;
      setLoadError(e);
      setConv(null);
    }
  }, [collections]);

  useEffect(() => {
    setError(null);
    setPicks({});
    if (!conversationId) {
      setConv(null);
      setLoadError(null);
      if (models) setCls(models.default_classification);
    } else void load(conversationId);
    // Focus the message box when a conversation opens (not on phones: the keyboard would cover it).
    if (window.matchMedia('(min-width: 721px)').matches) inputRef.current?.focus();
  }, [conversationId, load]);

  useEffect(
    () =>
      onTurnFinished((id) => {
        if (id === wanted.current) void load(id);
        void loadList('');
      }),
    [load, loadList],
  );

  useEffect(() => {
    document.title = `${current?.title ?? 'New chat'} · Enclave`;
  }, [current?.title]);

  // A picked assistant preselects its model and classification (the server still decides).
  const picked = conversationId ? undefined : assistants.find((a) => a.id === assistantId);
  useEffect(() => {
    if (!picked || !models) return;
    if (picked.model && models.data.some((m) => m.id === picked.model)) setModel(picked.model);
    setCls(picked.classification ?? models.default_classification);
  }, [picked, models]);
  const convAssistant = current?.assistant_id ? assistants.find((a) => a.id === current.assistant_id) : undefined;
  const starter = useStarter(conversationId, () => inputRef.current?.focus());

  const canChat = models?.can_chat !== false;

  const send = async (mode: SendMode, d?: Draft) => {
    if (!model) return setError(new Error('Pick a model first.'));
    setError(null);
    let id = conversationId;
    if (!id) {
      try {
        // Model and classification are stored with the first turn the gateway accepts, not before.
        id = (await api<ConversationView>('/api/chat/conversations', { body: picked ? { assistant_id: picked.id } : {} })).id;
      } catch (e) {
        return setError(e);
      }
      moveDraft(null, id);
      clearOutcome(null);
      navigate(`/chat/${id}`);
    }
    // Images are uploaded to the conversation first; a failed upload keeps the draft as it is.
    let images: DraftImage[] | undefined;
    let docCollections: string[] = [];
    if (d?.images?.length || d?.docs?.length) {
      try {
        if (d.images?.length) images = await uploadImages(id, d.images);
        // Documents: indexed into the conversation's own collection, which this turn (and the next ones) answer from.
        if (d.docs?.length) {
          const docs = await indexDocuments(id, d.docs, setDocStatus);
          docCollections = [...new Set(docs.flatMap((x) => (x.collectionId ? [x.collectionId] : [])))];
          setKnowledge(id, [...new Set([...knowledgeOf(id), ...docCollections])]);
        }
      } catch (e) {
        return setError(e);
      }
    }
    if (d) setDraft(id, { text: '', editing: false });
    const content = d?.text;
    // Where the turn goes in the tree: after what is shown (a send), a new branch beside the
    // edited turn, or a new version of the shown turn's answer; the fork then shows the newest.
    const shownPath = items.map((x) => x.message);
    const lastUser = shownPath.findLast((m) => m.role === 'user' && m.status !== 'not_sent');
    const editOf = mode === 'edit' ? (d?.editOf ?? lastUser?.id) : undefined;
    const parentId = mode === 'send' && !d?.retryOf ? shownPath.at(-1)?.id : mode === 'regenerate' ? lastUser?.id : undefined;
    const fork = mode === 'edit' ? items.find((x) => x.message.id === editOf)?.fork : mode === 'regenerate' ? parentId : undefined;
    if (fork) setPicks(({ [fork]: _dropped, ...rest }) => rest);
    await runTurn({
      convId: id,
      mode,
      model,
      cls,
      policy: models?.policy ?? null,
      ...(content !== undefined ? { content } : {}),
      ...(d?.retryOf ? { retryOf: d.retryOf } : {}),
      ...(editOf ? { editOf } : {}),
      ...(parentId ? { parentId } : {}),
      ...(images ? { images } : {}),
      ...(knowledgeOf(id).length ? { knowledge: knowledgeOf(id) } : {}),
    });
    inputRef.current?.focus();
  };

  const messages = current?.messages ?? [];
  const items = useMemo(() => thread(messages, picks), [messages, picks]);
  // The export: the branch being viewed, with each turn's current answer (picks of answer versions dropped).
  const branch = useMemo(() => thread(messages, Object.fromEntries(Object.entries(picks).filter(([f]) => !messages.some((m) => m.id === f && m.role === 'user')))).map((x) => x.message), [messages, picks]);
  const canRegenerate = !stream && items.some((x) => x.message.role === 'user' && x.message.status !== 'not_sent');

  const { rename, remove, removeAll } = useConversationActions({
    currentId: conversationId,
    reload: () => void loadList(query.trim()),
    onRenamed: (id, title) => setConv((c) => (c && c.id === id ? { ...c, title } : c)),
    onError: setError,
  });

  return (
    <div className="chat">
      <ConversationList
        convs={convs}
        currentId={conversationId}
        query={query}
        onQuery={setQuery}
        onNew={() => {
          setAssistantId('');
          navigate('/chat');
          setDrawer(false);
          inputRef.current?.focus();
        }}
        onRename={rename}
        onDelete={remove}
        onDeleteAll={removeAll}
        open={drawer}
        onClose={() => setDrawer(false)}
      />
      {drawer ? <div className="drawer-backdrop" aria-hidden="true" onClick={() => setDrawer(false)} /> : null}

      <section className="chat-main" aria-labelledby="chat-title">
        <ChatHeader
          current={current}
          conversationId={conversationId}
          models={models}
          model={model}
          onModel={setModel}
          cls={cls}
          onCls={setCls}
          busy={!!stream}
          drawer={drawer}
          onDrawer={() => setDrawer(true)}
          minCls={(picked ?? convAssistant)?.classification}
          branch={branch}
          assistant={
            conversationId ? (
              current?.assistant_id ? <span className="tag tag-assistant" data-testid="conversation-assistant">Assistant: {convAssistant?.name ?? 'deleted'}</span> : null
            ) : (
              <AssistantSelect assistants={assistants} value={assistantId} onChange={setAssistantId} disabled={!!stream} />
            )
          }
        />
        <ErrorNote error={modelsError} title="Could not load models." />
        <ChatNotes models={models} canChat={canChat} cls={cls} model={model} />
        <ErrorNote error={loadError} title="Could not load this conversation." />

        <Messages
          convId={conversationId}
          items={items}
          stream={stream}
          onPick={(fork, index) => setPicks((p) => ({ ...p, [fork]: index }))}
          intro={picked && !stream ? <AssistantIntro assistant={picked} onStarter={starter} /> : null}
          canRate={canChat}
          citations={citations}
          onEdit={(m) => {
            setDraft(conversationId, m.status === 'not_sent' ? { text: m.content, editing: false, retryOf: m.id } : { text: m.content, editing: true, editOf: m.id });
            inputRef.current?.focus();
          }}
          onRetry={(m) => void send('send', { text: m.content, editing: false, retryOf: m.id })}
        />

        <OutcomeNotes outcome={outcome} />
        <KnowledgePicker convId={conversationId} disabled={!!stream} collections={collections} />
        <ErrorNote error={error ?? outcome?.error} />

        <Composer
          convId={conversationId}
          inputRef={inputRef}
          streaming={!!stream}
          canSend={!!model && canChat}
          canRegenerate={canRegenerate && canChat}
          hint={messages.length > 0}
          model={model}
          docs={collections !== null}
          docStatus={docStatus}
          vision={!!models?.data.find((m) => m.id === model)?.vision}
          onSend={(d) => void send(d.editing ? 'edit' : 'send', d)}
          onRegenerate={() => void send('regenerate')}
          onStop={() => conversationId && stop(conversationId)}
        />
      </section>
    </div>
  );
}

