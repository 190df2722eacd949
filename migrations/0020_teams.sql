CREATE TABLE `team_members` (
	`tenant_id` text NOT NULL,
	`team_id` text NOT NULL,
	`user_id` text NOT NULL,
	`role` text DEFAULT 'member' NOT NULL,
	`source` text DEFAULT 'manual' NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`team_id`, `user_id`),
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`team_id`) REFERENCES `teams`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `team_members_user_idx` ON `team_members` (`tenant_id`,`user_id`);--> statement-breakpoint
CREATE TABLE `teams` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`name` text NOT NULL,
	`description` text DEFAULT '' NOT NULL,
	`allowed_models` text,
	`max_classification` text,
	`limits` text DEFAULT '{}' NOT NULL,
	`alert_thresholds` text DEFAULT '[80,100]' NOT NULL,
	`idp_group` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `teams_name_idx` ON `teams` (`tenant_id`,`name`);--> statement-breakpoint
CREATE TABLE `usage_team_rollups` (
	`tenant_id` text NOT NULL,
	`hour` integer NOT NULL,
	`team_id` text NOT NULL,
	`model` text DEFAULT '' NOT NULL,
	`requests` integer DEFAULT 0 NOT NULL,
	`errors` integer DEFAULT 0 NOT NULL,
	`prompt_tokens` integer DEFAULT 0 NOT NULL,
	`completion_tokens` integer DEFAULT 0 NOT NULL,
	`cost_micros` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`tenant_id`, `hour`, `team_id`, `model`),
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
ALTER TABLE `api_keys` ADD `team_id` text REFERENCES teams(id) ON DELETE SET NULL;--> statement-breakpoint
ALTER TABLE `usage_records` ADD `team_id` text;--> statement-breakpoint
-- Usage per hour × team × model, in the same transaction as each usage record of a call that
-- counted against a team (like usage_records_rollup of 0006): reports by team, and the team
-- level's monthly counters are seeded from it.
CREATE TRIGGER `usage_records_team_rollup` AFTER INSERT ON `usage_records` WHEN NEW.`team_id` IS NOT NULL BEGIN
  INSERT INTO `usage_team_rollups` (`tenant_id`, `hour`, `team_id`, `model`, `requests`, `errors`, `prompt_tokens`, `completion_tokens`, `cost_micros`)
  VALUES (NEW.`tenant_id`, NEW.`created_at` - (NEW.`created_at` % 3600000), NEW.`team_id`, COALESCE(NEW.`model`, NEW.`alias`, ''),
    1, CASE WHEN NEW.`status` = 'ok' THEN 0 ELSE 1 END, NEW.`prompt_tokens`, NEW.`completion_tokens`, NEW.`cost_micros`)
  ON CONFLICT (`tenant_id`, `hour`, `team_id`, `model`) DO UPDATE SET
    `requests` = `requests` + 1,
    `errors` = `errors` + excluded.`errors`,
    `prompt_tokens` = `prompt_tokens` + excluded.`prompt_tokens`,
    `completion_tokens` = `completion_tokens` + excluded.`completion_tokens`,
    `cost_micros` = `cost_micros` + excluded.`cost_micros`;
END;
