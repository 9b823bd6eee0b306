-- Model bundles devices are served from, their reference statistics, and the append-only audit log.

CREATE TABLE verify_ai_model_bundles (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    policy_id           text NOT NULL REFERENCES verify_ai_policies (policy_id),
    bundle_version      integer NOT NULL CHECK (bundle_version > 0),
    ontology_version    text,
    schema_version      text,
    policy_ast          jsonb,
    artifacts           jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(artifacts) = 'array'),
    is_active           boolean NOT NULL DEFAULT false,
    training_dataset_id uuid REFERENCES verify_ai_ml_datasets (id),
    git_sha             text,
    gold_eval_results   jsonb,
    bundle_tier         text CHECK (bundle_tier IN ('canary', 'production')),
    weight              integer CHECK (weight >= 0 AND weight <= 100),
    targeting           jsonb,
    mlflow_model_name   text,
    mlflow_model_version text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    activated_at        timestamptz,
    UNIQUE (policy_id, bundle_version),
    CONSTRAINT active_has_tier CHECK (NOT is_active OR (bundle_tier IS NOT NULL AND activated_at IS NOT NULL))
);

CREATE TABLE verify_ai_model_reference_stats (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    bundle_id     uuid NOT NULL REFERENCES verify_ai_model_bundles (id),
    snapshot_type text NOT NULL CHECK (snapshot_type IN ('promotion', 'live')),
    stats         jsonb NOT NULL,
    sample_count  integer NOT NULL CHECK (sample_count >= 0),
    drift_score   double precision,
    window_start  timestamptz,
    window_end    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX verify_ai_model_reference_stats_bundle
    ON verify_ai_model_reference_stats (bundle_id, snapshot_type, created_at);

CREATE TABLE verify_ai_bundle_events (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bundle_id uuid REFERENCES verify_ai_model_bundles (id),
    event     text NOT NULL,
    actor     text NOT NULL,
    details   jsonb NOT NULL DEFAULT '{}'::jsonb,
    at        timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION verify_ai_bundle_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'verify_ai_bundle_events is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER verify_ai_bundle_events_append_only
    BEFORE UPDATE OR DELETE ON verify_ai_bundle_events
    FOR EACH ROW EXECUTE FUNCTION verify_ai_bundle_events_append_only();
