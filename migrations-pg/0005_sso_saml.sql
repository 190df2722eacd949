ALTER TABLE "sso_idps" ADD COLUMN "protocol" text DEFAULT 'oidc' NOT NULL;--> statement-breakpoint
ALTER TABLE "sso_idps" ADD COLUMN "saml" jsonb;