ALTER TABLE `sso_idps` ADD `protocol` text DEFAULT 'oidc' NOT NULL;--> statement-breakpoint
ALTER TABLE `sso_idps` ADD `saml` text;