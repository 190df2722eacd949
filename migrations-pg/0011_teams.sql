CREATE TABLE "team_members" (
	"tenant_id" text NOT NULL,
	"team_id" text NOT NULL,
	"user_id" text NOT NULL,
	"role" text DEFAULT 'member' NOT NULL,
	"source" text DEFAULT 'manual' NOT NULL,
	"created_at" timestamp (3) with time zone NOT NULL,
	CONSTRAINT "team_members_team_id_user_id_pk" PRIMARY KEY("team_id","user_id")
);
--> statement-breakpoint
CREATE TABLE "teams" (
	"id" text PRIMARY KEY NOT NULL,
	"tenant_id" text NOT NULL,
	"name" text NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"allowed_models" jsonb,
	"max_classification" text,
	"limits" jsonb DEFAULT '{}' NOT NULL,
	"alert_thresholds" jsonb DEFAULT '[80,100]' NOT NULL,
	"idp_group" text,
	"created_at" timestamp (3) with time zone NOT NULL,
	"updated_at" timestamp (3) with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "usage_team_rollups" (
	"tenant_id" text NOT NULL,
	"hour" timestamp (3) with time zone NOT NULL,
	"team_id" text NOT NULL,
	"model" text DEFAULT '' NOT NULL,
	"requests" bigint DEFAULT 0 NOT NULL,
	"errors" bigint DEFAULT 0 NOT NULL,
	"prompt_tokens" bigint DEFAULT 0 NOT NULL,
	"completion_tokens" bigint DEFAULT 0 NOT NULL,
	"cost_micros" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "usage_team_rollups_tenant_id_hour_team_id_model_pk" PRIMARY KEY("tenant_id","hour","team_id","model")
);
--> statement-breakpoint
ALTER TABLE "api_keys" ADD COLUMN "team_id" text;--> statement-breakpoint
ALTER TABLE "usage_records" ADD COLUMN "team_id" text;--> statement-breakpoint
ALTER TABLE "team_members" ADD CONSTRAINT "team_members_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "team_members" ADD CONSTRAINT "team_members_team_id_teams_id_fk" FOREIGN KEY ("team_id") REFERENCES "public"."teams"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "team_members" ADD CONSTRAINT "team_members_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "teams" ADD CONSTRAINT "teams_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "usage_team_rollups" ADD CONSTRAINT "usage_team_rollups_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "team_members_user_idx" ON "team_members" USING btree ("tenant_id","user_id");--> statement-breakpoint
CREATE UNIQUE INDEX "teams_name_idx" ON "teams" USING btree ("tenant_id","name");--> statement-breakpoint
ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_team_id_teams_id_fk" FOREIGN KEY ("team_id") REFERENCES "public"."teams"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
-- Usage per hour × team × model, in the same transaction as each usage record of a call that
-- counted against a team (as the SQLite trigger of migrations/0020_teams.sql does).
CREATE FUNCTION usage_records_team_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO usage_team_rollups (tenant_id, hour, team_id, model, requests, errors, prompt_tokens, completion_tokens, cost_micros)
  VALUES (NEW.tenant_id, date_trunc('hour', NEW.created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', NEW.team_id, COALESCE(NEW.model, NEW.alias, ''),
    1, CASE WHEN NEW.status = 'ok' THEN 0 ELSE 1 END, NEW.prompt_tokens, NEW.completion_tokens, NEW.cost_micros)
  ON CONFLICT (tenant_id, hour, team_id, model) DO UPDATE SET
    requests = usage_team_rollups.requests + 1,
    errors = usage_team_rollups.errors + excluded.errors,
    prompt_tokens = usage_team_rollups.prompt_tokens + excluded.prompt_tokens,
    completion_tokens = usage_team_rollups.completion_tokens + excluded.completion_tokens,
    cost_micros = usage_team_rollups.cost_micros + excluded.cost_micros;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER usage_records_team_rollup AFTER INSERT ON usage_records FOR EACH ROW WHEN (NEW.team_id IS NOT NULL) EXECUTE FUNCTION usage_records_team_rollup();
