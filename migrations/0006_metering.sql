CREATE TABLE `metering_limits` (
	`tenant_id` text NOT NULL,
	`subject_type` text NOT NULL,
	`subject_id` text NOT NULL,
	`limits` text DEFAULT '{}' NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`tenant_id`, `subject_type`, `subject_id`),
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `metering_notifications` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`window` text NOT NULL,
	`limit_name` text NOT NULL,
	`threshold` integer NOT NULL,
	`used` integer NOT NULL,
	`limit_value` integer NOT NULL,
	`created_at` integer NOT NULL,
	`dismissed_at` integer,
	`webhook_delivered_at` integer,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `metering_notifications_once` ON `metering_notifications` (`tenant_id`,`window`,`limit_name`,`threshold`);--> statement-breakpoint
CREATE TABLE `metering_settings` (
	`tenant_id` text PRIMARY KEY NOT NULL,
	`timezone` text DEFAULT 'UTC' NOT NULL,
	`raw_retention_days` integer,
	`alert_thresholds` text DEFAULT '[80,100]' NOT NULL,
	`webhook_url` text,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `plans` (
	`name` text PRIMARY KEY NOT NULL,
	`description` text DEFAULT '' NOT NULL,
	`capabilities` text DEFAULT '[]' NOT NULL,
	`limits` text DEFAULT '{}' NOT NULL,
	`allowed_models` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `prices` (
	`version` integer PRIMARY KEY NOT NULL,
	`model` text NOT NULL,
	`deployment_id` text DEFAULT '' NOT NULL,
	`input_micros_per_mtok` integer NOT NULL,
	`output_micros_per_mtok` integer NOT NULL,
	`request_micros` integer DEFAULT 0 NOT NULL,
	`currency` text DEFAULT 'USD' NOT NULL,
	`source` text DEFAULT 'admin' NOT NULL,
	`created_by` text,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `prices_model_idx` ON `prices` (`model`,`deployment_id`,`version`);--> statement-breakpoint
CREATE TABLE `usage_rollups` (
	`tenant_id` text NOT NULL,
	`hour` integer NOT NULL,
	`user_id` text DEFAULT '' NOT NULL,
	`key_id` text DEFAULT '' NOT NULL,
	`model` text DEFAULT '' NOT NULL,
	`provider` text DEFAULT '' NOT NULL,
	`boundary` text DEFAULT '' NOT NULL,
	`requests` integer DEFAULT 0 NOT NULL,
	`errors` integer DEFAULT 0 NOT NULL,
	`prompt_tokens` integer DEFAULT 0 NOT NULL,
	`completion_tokens` integer DEFAULT 0 NOT NULL,
	`cost_micros` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`tenant_id`, `hour`, `user_id`, `key_id`, `model`, `provider`, `boundary`),
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
ALTER TABLE `usage_records` ADD `price_version` integer;--> statement-breakpoint
CREATE TRIGGER `usage_records_rollup` AFTER INSERT ON `usage_records` BEGIN
  INSERT INTO `usage_rollups` (`tenant_id`, `hour`, `user_id`, `key_id`, `model`, `provider`, `boundary`, `requests`, `errors`, `prompt_tokens`, `completion_tokens`, `cost_micros`)
  VALUES (NEW.`tenant_id`, NEW.`created_at` - (NEW.`created_at` % 3600000), COALESCE(NEW.`user_id`, ''), COALESCE(NEW.`key_id`, ''), COALESCE(NEW.`model`, NEW.`alias`, ''), COALESCE(NEW.`provider`, ''), COALESCE(NEW.`boundary`, ''),
    1, CASE WHEN NEW.`status` = 'ok' THEN 0 ELSE 1 END, NEW.`prompt_tokens`, NEW.`completion_tokens`, NEW.`cost_micros`)
  ON CONFLICT (`tenant_id`, `hour`, `user_id`, `key_id`, `model`, `provider`, `boundary`) DO UPDATE SET
    `requests` = `requests` + 1,
    `errors` = `errors` + excluded.`errors`,
    `prompt_tokens` = `prompt_tokens` + excluded.`prompt_tokens`,
    `completion_tokens` = `completion_tokens` + excluded.`completion_tokens`,
    `cost_micros` = `cost_micros` + excluded.`cost_micros`;
END;
--> statement-breakpoint
INSERT OR IGNORE INTO `plans` (`name`, `description`, `capabilities`, `limits`, `allowed_models`, `created_at`, `updated_at`)
VALUES ('default', 'Every capability, no limits beyond the licence (assigned to tenants without a plan).', '["cloud_providers","batch_api","content_logging","self_service_keys","custom_providers"]', '{}', NULL, 0, 0);
