CREATE TABLE `model_aliases` (
	`name` text PRIMARY KEY NOT NULL,
	`targets` text NOT NULL,
	`tenant_ref` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `provider_deployments` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`kind` text NOT NULL,
	`base_url` text NOT NULL,
	`api_key` text,
	`boundary` text NOT NULL,
	`region` text,
	`approved` integer DEFAULT true NOT NULL,
	`enabled` integer DEFAULT true NOT NULL,
	`models` text DEFAULT '[]' NOT NULL,
	`priority` integer DEFAULT 100 NOT NULL,
	`weight` integer DEFAULT 1 NOT NULL,
	`max_concurrency` integer DEFAULT 64 NOT NULL,
	`options` text DEFAULT '{}' NOT NULL,
	`tenant_ref` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `provider_deployments_name_unique` ON `provider_deployments` (`name`);--> statement-breakpoint
CREATE TABLE `usage_records` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`request_id` text NOT NULL,
	`user_id` text,
	`key_id` text,
	`workflow` text,
	`endpoint` text NOT NULL,
	`alias` text,
	`deployment_id` text,
	`provider` text,
	`model` text,
	`boundary` text,
	`classification` text,
	`policy` text DEFAULT '{}' NOT NULL,
	`prompt_tokens` integer DEFAULT 0 NOT NULL,
	`completion_tokens` integer DEFAULT 0 NOT NULL,
	`tokens_estimated` integer DEFAULT false NOT NULL,
	`cost_micros` integer DEFAULT 0 NOT NULL,
	`latency_ms` integer NOT NULL,
	`ttft_ms` integer,
	`stream` integer DEFAULT false NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`status` text NOT NULL,
	`http_status` integer NOT NULL,
	`error_code` text,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `usage_records_tenant_idx` ON `usage_records` (`tenant_id`,`created_at`);--> statement-breakpoint
CREATE INDEX `usage_records_request_idx` ON `usage_records` (`request_id`);