-- The default plan, as SQLite's migration 0006 seeds it (tenants without a plan get it; it cannot be deleted).
-- A database filled by `enclave db migrate-to-postgres` already has the row (copied): kept as it is.
INSERT INTO plans (name, description, capabilities, limits, allowed_models, created_at, updated_at)
VALUES ('default', 'Every capability, no limits beyond the licence (assigned to tenants without a plan).', '["cloud_providers","batch_api","content_logging","self_service_keys","custom_providers"]', '{}', NULL, to_timestamp(0), to_timestamp(0))
ON CONFLICT (name) DO NOTHING;
