-- Which sample rows (and labels) trained which model version; API keys for devices.

CREATE TABLE model_training_runs (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    model_version text NOT NULL UNIQUE,
    trained_at    timestamptz NOT NULL DEFAULT now(),
    params_json   jsonb NOT NULL DEFAULT '{}'::jsonb,
    notes         text
);

CREATE TABLE model_training_snapshot_labels (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    training_run_id uuid NOT NULL REFERENCES model_training_runs (id) ON DELETE CASCADE,
    snapshot_id     uuid NOT NULL REFERENCES verify_ai_ml_samples (id),
    label_source    text,
    label_value     double precision,
    included_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (training_run_id, snapshot_id)
);

CREATE TABLE verify_ai_api_keys (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    customer_id text NOT NULL,
    key_hash    text NOT NULL UNIQUE,
    scopes      text[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
