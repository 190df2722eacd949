ALTER TABLE "provider_deployments" ADD COLUMN "settings" jsonb DEFAULT '{}' NOT NULL;--> statement-breakpoint
ALTER TABLE "provider_deployments" ADD COLUMN "credentials" text;