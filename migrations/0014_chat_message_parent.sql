ALTER TABLE `chat_messages` ADD `parent_id` text;--> statement-breakpoint
-- Messages stored before conversations became trees: an answer follows the user turn before it
-- (regenerated answers are siblings there), any other message the message before it that is not
-- a superseded answer; the first message of a conversation has none.
UPDATE `chat_messages` SET `parent_id` = (
  SELECT p.`id` FROM `chat_messages` p
  WHERE p.`conversation_id` = `chat_messages`.`conversation_id`
    AND (p.`created_at` < `chat_messages`.`created_at` OR (p.`created_at` = `chat_messages`.`created_at` AND p.`id` < `chat_messages`.`id`))
    AND ((`chat_messages`.`role` = 'assistant' AND p.`role` = 'user') OR (`chat_messages`.`role` <> 'assistant' AND p.`status` <> 'superseded'))
  ORDER BY p.`created_at` DESC, p.`id` DESC LIMIT 1
) WHERE `parent_id` IS NULL;
