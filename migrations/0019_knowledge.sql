CREATE TABLE `knowledge_chunks` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`vector_store_id` text NOT NULL,
	`file_id` text NOT NULL,
	`chunk_index` integer NOT NULL,
	`page` integer,
	`text` text NOT NULL,
	`embedding` blob NOT NULL,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`vector_store_id`) REFERENCES `vector_stores`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`file_id`) REFERENCES `files`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `knowledge_chunks_store_idx` ON `knowledge_chunks` (`vector_store_id`,`file_id`,`chunk_index`);--> statement-breakpoint
CREATE TABLE `knowledge_citations` (
	`message_id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`conversation_id` text NOT NULL,
	`citations` text NOT NULL,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`message_id`) REFERENCES `chat_messages`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `knowledge_citations_conversation_idx` ON `knowledge_citations` (`tenant_id`,`conversation_id`);--> statement-breakpoint
CREATE TABLE `vector_store_files` (
	`vector_store_id` text NOT NULL,
	`file_id` text NOT NULL,
	`tenant_id` text NOT NULL,
	`status` text NOT NULL,
	`last_error` text,
	`classification` text NOT NULL,
	`attributes` text,
	`content_type` text NOT NULL,
	`pages` integer,
	`chunk_count` integer DEFAULT 0 NOT NULL,
	`usage_bytes` integer DEFAULT 0 NOT NULL,
	`user_id` text,
	`key_id` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`vector_store_id`, `file_id`),
	FOREIGN KEY (`vector_store_id`) REFERENCES `vector_stores`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`file_id`) REFERENCES `files`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `vector_store_files_file_idx` ON `vector_store_files` (`tenant_id`,`file_id`);--> statement-breakpoint
CREATE TABLE `vector_stores` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`name` text NOT NULL,
	`description` text,
	`sharing` text NOT NULL,
	`owner_user_id` text,
	`key_id` text,
	`conversation_id` text,
	`classification` text NOT NULL,
	`embedding_model` text NOT NULL,
	`metadata` text,
	`usage_bytes` integer DEFAULT 0 NOT NULL,
	`created_at` integer NOT NULL,
	`last_active_at` integer,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `vector_stores_tenant_idx` ON `vector_stores` (`tenant_id`,`created_at`);--> statement-breakpoint
-- Keyword search over knowledge chunks (BM25): an FTS5 index that stores no text of its own
-- (contentless, with deletes), keyed by knowledge_fts_ids.id — an INTEGER PRIMARY KEY keeps its
-- values through VACUUM INTO (backups), a plain rowid would not (as chat_fts, migration 0011).
-- Triggers keep it in step with knowledge_chunks, also for cascaded deletes; an ignored
-- insert (INSERT … ON CONFLICT DO NOTHING) fires no trigger.
CREATE TABLE `knowledge_fts_ids` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`chunk_id` text NOT NULL UNIQUE REFERENCES `knowledge_chunks`(`id`) ON DELETE CASCADE
);
--> statement-breakpoint
CREATE VIRTUAL TABLE `knowledge_fts` USING fts5(text, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 2');
--> statement-breakpoint
CREATE TRIGGER `knowledge_fts_insert` AFTER INSERT ON `knowledge_chunks` BEGIN
  INSERT INTO `knowledge_fts_ids` (`chunk_id`) VALUES (new.`id`);
  INSERT INTO `knowledge_fts` (rowid, text) VALUES ((SELECT `id` FROM `knowledge_fts_ids` WHERE `chunk_id` = new.`id`), new.`text`);
END;
--> statement-breakpoint
CREATE TRIGGER `knowledge_fts_delete` BEFORE DELETE ON `knowledge_chunks` BEGIN
  DELETE FROM `knowledge_fts` WHERE rowid = (SELECT `id` FROM `knowledge_fts_ids` WHERE `chunk_id` = old.`id`);
  DELETE FROM `knowledge_fts_ids` WHERE `chunk_id` = old.`id`;
END;
