-- Usage rollups per hour (UTC), maintained in the same transaction as each usage record, as the
-- SQLite trigger of migrations/0006_metering.sql does. The hour is truncated in UTC whatever the
-- session's TimeZone. ON CONFLICT on the primary key is safe under concurrent inserts.
CREATE FUNCTION usage_records_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO usage_rollups (tenant_id, hour, user_id, key_id, model, provider, boundary, requests, errors, prompt_tokens, completion_tokens, cost_micros)
  VALUES (NEW.tenant_id, date_trunc('hour', NEW.created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', COALESCE(NEW.user_id, ''), COALESCE(NEW.key_id, ''),
    COALESCE(NEW.model, NEW.alias, ''), COALESCE(NEW.provider, ''), COALESCE(NEW.boundary, ''),
    1, CASE WHEN NEW.status = 'ok' THEN 0 ELSE 1 END, NEW.prompt_tokens, NEW.completion_tokens, NEW.cost_micros)
  ON CONFLICT (tenant_id, hour, user_id, key_id, model, provider, boundary) DO UPDATE SET
    requests = usage_rollups.requests + 1,
    errors = usage_rollups.errors + excluded.errors,
    prompt_tokens = usage_rollups.prompt_tokens + excluded.prompt_tokens,
    completion_tokens = usage_rollups.completion_tokens + excluded.completion_tokens,
    cost_micros = usage_rollups.cost_micros + excluded.cost_micros;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER usage_records_rollup AFTER INSERT ON usage_records FOR EACH ROW EXECUTE FUNCTION usage_records_rollup();
