CREATE TABLE `call_contents` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`request_id` text NOT NULL,
	`usage_id` text,
	`endpoint` text NOT NULL,
	`content` text NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `call_contents_request_idx` ON `call_contents` (`tenant_id`,`request_id`);--> statement-breakpoint
CREATE INDEX `call_contents_expiry_idx` ON `call_contents` (`expires_at`);