ALTER TABLE "usage_records" ADD COLUMN "cache" text;--> statement-breakpoint
ALTER TABLE "usage_records" ADD COLUMN "saved_cost_micros" bigint DEFAULT 0 NOT NULL;