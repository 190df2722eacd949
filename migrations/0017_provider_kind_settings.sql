ALTER TABLE `provider_deployments` ADD `settings` text DEFAULT '{}' NOT NULL;--> statement-breakpoint
ALTER TABLE `provider_deployments` ADD `credentials` text;