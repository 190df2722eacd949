CREATE TABLE `sso_identities` (
	`id` text PRIMARY KEY NOT NULL,
	`issuer` text NOT NULL,
	`subject` text NOT NULL,
	`user_id` text NOT NULL,
	`idp_ref` text NOT NULL,
	`platform_admin_managed` integer DEFAULT false NOT NULL,
	`created_at` integer NOT NULL,
	`last_login_at` integer NOT NULL,
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `sso_identities_iss_sub_idx` ON `sso_identities` (`issuer`,`subject`);--> statement-breakpoint
CREATE INDEX `sso_identities_user_idx` ON `sso_identities` (`user_id`);--> statement-breakpoint
CREATE TABLE `sso_idps` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`name` text NOT NULL,
	`issuer` text NOT NULL,
	`client_id` text NOT NULL,
	`client_secret` text NOT NULL,
	`scopes` text DEFAULT 'openid email profile' NOT NULL,
	`claim_source` text DEFAULT 'id_token' NOT NULL,
	`roles_path` text,
	`groups_path` text,
	`mapping` text DEFAULT '[]' NOT NULL,
	`default_role` text,
	`allowed_domains` text DEFAULT '[]' NOT NULL,
	`jit` integer DEFAULT false NOT NULL,
	`enforce_sso` integer DEFAULT false NOT NULL,
	`enabled` integer DEFAULT true NOT NULL,
	`last_claims` text,
	`last_claims_at` integer,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `sso_idps_tenant_idx` ON `sso_idps` (`tenant_id`);--> statement-breakpoint
CREATE INDEX `sso_idps_issuer_idx` ON `sso_idps` (`issuer`);--> statement-breakpoint
CREATE TABLE `sso_sessions` (
	`session_id` text PRIMARY KEY NOT NULL,
	`idp_ref` text NOT NULL,
	`issuer` text NOT NULL,
	`subject` text NOT NULL,
	`sid` text,
	`id_token` text,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`session_id`) REFERENCES `sessions`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `sso_sessions_sid_idx` ON `sso_sessions` (`issuer`,`sid`);--> statement-breakpoint
CREATE INDEX `sso_sessions_sub_idx` ON `sso_sessions` (`issuer`,`subject`);