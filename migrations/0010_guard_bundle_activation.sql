-- What the bridge needs to make bundles safe to serve:
--   * one bundle per MLflow model version (the bridge's idempotence key);
--   * at most one active bundle per policy and tier (a device gets one canary and one production);
--   * the gate verdict, a forced promotion's actor and reason, the content hash, and when every
--     artifact was read back from the bucket with a matching sha256;
--   * a trigger that refuses to activate a bundle whose artifacts are not verified, whose
--     promotion reference statistics are not captured, or whose gate did not pass (unless the
--     promotion was forced, with a reason on the row).

ALTER TABLE verify_ai_model_bundles
    ADD COLUMN gate_status           text CHECK (gate_status IN ('PASS', 'FAIL')),
    ADD COLUMN force_reason          text CHECK (force_reason IS NULL OR length(btrim(force_reason)) > 0),
    ADD COLUMN promoted_by           text,
    ADD COLUMN bundle_hash           text,
    ADD COLUMN artifacts_verified_at timestamptz;

CREATE UNIQUE INDEX verify_ai_model_bundles_one_per_model_version
    ON verify_ai_model_bundles (mlflow_model_name, mlflow_model_version)
    WHERE mlflow_model_name IS NOT NULL AND mlflow_model_version IS NOT NULL;

CREATE UNIQUE INDEX verify_ai_model_bundles_one_active_per_tier
    ON verify_ai_model_bundles (policy_id, bundle_tier)
    WHERE is_active;

CREATE INDEX verify_ai_bundle_events_bundle ON verify_ai_bundle_events (bundle_id, id);

CREATE FUNCTION verify_ai_model_bundles_guard_activation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.is_active AND (TG_OP = 'INSERT' OR NOT OLD.is_active) THEN
        IF NEW.artifacts_verified_at IS NULL THEN
            RAISE EXCEPTION 'bundle % v% cannot be activated: its artifacts are not verified in the bucket',
                NEW.policy_id, NEW.bundle_version USING ERRCODE = 'check_violation';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM verify_ai_model_reference_stats
                       WHERE bundle_id = NEW.id AND snapshot_type = 'promotion') THEN
            RAISE EXCEPTION 'bundle % v% cannot be activated: no promotion reference statistics',
                NEW.policy_id, NEW.bundle_version USING ERRCODE = 'check_violation';
        END IF;
        IF NEW.gate_status IS DISTINCT FROM 'PASS' AND NEW.force_reason IS NULL THEN
            RAISE EXCEPTION 'bundle % v% cannot be activated: its gate is % and the promotion was not forced',
                NEW.policy_id, NEW.bundle_version, coalesce(NEW.gate_status, 'unknown')
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER verify_ai_model_bundles_guard_activation
    BEFORE INSERT OR UPDATE ON verify_ai_model_bundles
    FOR EACH ROW EXECUTE FUNCTION verify_ai_model_bundles_guard_activation();
