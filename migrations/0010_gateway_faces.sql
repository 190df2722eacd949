CREATE TABLE `stored_responses` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`owner_id` text NOT NULL,
	`model` text NOT NULL,
	`content` text NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `stored_responses_owner_idx` ON `stored_responses` (`tenant_id`,`owner_id`);--> statement-breakpoint
CREATE INDEX `stored_responses_expiry_idx` ON `stored_responses` (`expires_at`);--> statement-breakpoint
ALTER TABLE `usage_records` ADD `api` text DEFAULT 'chat' NOT NULL;