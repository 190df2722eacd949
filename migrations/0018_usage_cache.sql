ALTER TABLE `usage_records` ADD `cache` text;--> statement-breakpoint
ALTER TABLE `usage_records` ADD `saved_cost_micros` integer DEFAULT 0 NOT NULL;