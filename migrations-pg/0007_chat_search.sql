-- Search across chat message contents on PostgreSQL (issue 22; SQLite has the FTS5 index of
-- its migration 0011). A GIN index on the 'simple' text-search vector (lower-cased words, no
-- stemming: close to FTS5's unicode61 tokenizer) of the message's first 100 000 characters:
-- a tsvector holds at most 1 MB, and this prefix stays below it for any text, so a long
-- answer never fails its insert. server/db/repos/chat.ts (conversationsMatching) queries the
-- same expression (SEARCH_PREFIX) with websearch_to_tsquery / to_tsquery('simple', …), which
-- is what lets the planner use this index.
CREATE INDEX IF NOT EXISTS "chat_messages_search_idx" ON "chat_messages" USING gin (to_tsvector('simple'::regconfig, left("content", 100000)));
