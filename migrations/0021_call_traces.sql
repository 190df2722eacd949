CREATE TABLE `call_traces` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`request_id` text NOT NULL,
	`usage_id` text,
	`created_at` integer NOT NULL,
	`api` text NOT NULL,
	`endpoint` text NOT NULL,
	`model` text,
	`deployment` text,
	`user_id` text,
	`key_id` text,
	`team_id` text,
	`workflow` text,
	`classification` text,
	`status` text NOT NULL,
	`http_status` integer NOT NULL,
	`error_code` text,
	`latency_ms` integer NOT NULL,
	`prompt_tokens` integer DEFAULT 0 NOT NULL,
	`completion_tokens` integer DEFAULT 0 NOT NULL,
	`cost_micros` integer DEFAULT 0 NOT NULL,
	`trace` text NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `call_traces_tenant_idx` ON `call_traces` (`tenant_id`,`created_at`);--> statement-breakpoint
CREATE INDEX `call_traces_request_idx` ON `call_traces` (`tenant_id`,`request_id`);--> statement-breakpoint
CREATE INDEX `call_traces_created_idx` ON `call_traces` (`created_at`);