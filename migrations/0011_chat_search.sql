-- Search across chat message contents (issue 21): an FTS5 index that stores no text of its
-- own (contentless, with deletes), keyed by chat_search_ids.id, an INTEGER PRIMARY KEY that
-- keeps its values through VACUUM INTO (backups) where a plain rowid of chat_messages would
-- not. Triggers keep it in step with chat_messages, also for cascaded deletes.
CREATE TABLE `chat_search_ids` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`message_id` text NOT NULL UNIQUE REFERENCES `chat_messages`(`id`) ON DELETE CASCADE
);
--> statement-breakpoint
CREATE VIRTUAL TABLE `chat_fts` USING fts5(content, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 2');
--> statement-breakpoint
INSERT INTO `chat_search_ids` (`message_id`) SELECT `id` FROM `chat_messages` ORDER BY `created_at`, `id`;
--> statement-breakpoint
INSERT INTO `chat_fts` (rowid, content) SELECT s.`id`, m.`content` FROM `chat_search_ids` s JOIN `chat_messages` m ON m.`id` = s.`message_id`;
--> statement-breakpoint
CREATE TRIGGER `chat_fts_insert` AFTER INSERT ON `chat_messages` BEGIN
  INSERT INTO `chat_search_ids` (`message_id`) VALUES (new.`id`);
  INSERT INTO `chat_fts` (rowid, content) VALUES ((SELECT `id` FROM `chat_search_ids` WHERE `message_id` = new.`id`), new.`content`);
END;
--> statement-breakpoint
CREATE TRIGGER `chat_fts_delete` BEFORE DELETE ON `chat_messages` BEGIN
  DELETE FROM `chat_fts` WHERE rowid = (SELECT `id` FROM `chat_search_ids` WHERE `message_id` = old.`id`);
  DELETE FROM `chat_search_ids` WHERE `message_id` = old.`id`;
END;
--> statement-breakpoint
CREATE TRIGGER `chat_fts_update` AFTER UPDATE OF `content` ON `chat_messages` BEGIN
  DELETE FROM `chat_fts` WHERE rowid = (SELECT `id` FROM `chat_search_ids` WHERE `message_id` = old.`id`);
  INSERT INTO `chat_fts` (rowid, content) VALUES ((SELECT `id` FROM `chat_search_ids` WHERE `message_id` = new.`id`), new.`content`);
END;
