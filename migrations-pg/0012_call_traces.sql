CREATE TABLE "call_traces" (
	"id" text PRIMARY KEY NOT NULL,
	"tenant_id" text NOT NULL,
	"request_id" text NOT NULL,
	"usage_id" text,
	"created_at" timestamp (3) with time zone NOT NULL,
	"api" text NOT NULL,
	"endpoint" text NOT NULL,
	"model" text,
	"deployment" text,
	"user_id" text,
	"key_id" text,
	"team_id" text,
	"workflow" text,
	"classification" text,
	"status" text NOT NULL,
	"http_status" integer NOT NULL,
	"error_code" text,
	"latency_ms" integer NOT NULL,
	"prompt_tokens" bigint DEFAULT 0 NOT NULL,
	"completion_tokens" bigint DEFAULT 0 NOT NULL,
	"cost_micros" bigint DEFAULT 0 NOT NULL,
	"trace" json NOT NULL
);
--> statement-breakpoint
ALTER TABLE "call_traces" ADD CONSTRAINT "call_traces_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "call_traces_tenant_idx" ON "call_traces" USING btree ("tenant_id","created_at");--> statement-breakpoint
CREATE INDEX "call_traces_request_idx" ON "call_traces" USING btree ("tenant_id","request_id");--> statement-breakpoint
CREATE INDEX "call_traces_created_idx" ON "call_traces" USING btree ("created_at");