-- Device delivery (the bundle API and SDK):
--   * each active bundle carries the manifest devices verify: the exact signed bytes, their
--     ed25519 signature, the signing key's id and the manifest's expiry;
--   * API keys get a name, a shown prefix and a closed set of scopes;
--   * telemetry windows a device sends are rows: one per (device, bundle, window), with its
--     histogram bins and class counts as child rows the drift job sums in SQL.

ALTER TABLE verify_ai_model_bundles
    ADD COLUMN manifest            text,
    ADD COLUMN manifest_signature  text,
    ADD COLUMN signing_key_id      text,
    ADD COLUMN manifest_expires_at timestamptz,
    ADD CONSTRAINT manifest_is_signed CHECK (
        (manifest IS NULL) = (manifest_signature IS NULL)
        AND (manifest IS NULL) = (signing_key_id IS NULL)
        AND (manifest IS NULL) = (manifest_expires_at IS NULL)
    );

ALTER TABLE verify_ai_api_keys
    ADD COLUMN name       text,
    ADD COLUMN key_prefix text,
    ADD CONSTRAINT api_key_scopes_known
        CHECK (scopes <@ ARRAY['models:read', 'telemetry:write', 'drift:read']::text[]),
    ADD CONSTRAINT api_key_customer_not_blank CHECK (length(btrim(customer_id)) > 0);

CREATE TABLE verify_ai_telemetry_windows (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bundle_id      uuid NOT NULL REFERENCES verify_ai_model_bundles (id),
    device_id      text NOT NULL CHECK (length(device_id) BETWEEN 1 AND 200),
    customer_id    text NOT NULL,
    api_key_id     uuid REFERENCES verify_ai_api_keys (id),
    window_start   timestamptz NOT NULL,
    window_end     timestamptz NOT NULL,
    sample_count   integer NOT NULL CHECK (sample_count >= 0),
    content_sha256 text NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT telemetry_window_order CHECK (window_end > window_start),
    UNIQUE (device_id, bundle_id, window_start, window_end)
);

CREATE INDEX verify_ai_telemetry_windows_bundle_time
    ON verify_ai_telemetry_windows (bundle_id, window_start);

CREATE TABLE verify_ai_telemetry_bins (
    window_id bigint NOT NULL REFERENCES verify_ai_telemetry_windows (id) ON DELETE CASCADE,
    feature   text NOT NULL,
    bin       integer NOT NULL CHECK (bin >= 0),
    count     bigint NOT NULL CHECK (count >= 0),
    PRIMARY KEY (window_id, feature, bin)
);

CREATE TABLE verify_ai_telemetry_classes (
    window_id  bigint NOT NULL REFERENCES verify_ai_telemetry_windows (id) ON DELETE CASCADE,
    class_name text NOT NULL,
    count      bigint NOT NULL CHECK (count >= 0),
    PRIMARY KEY (window_id, class_name)
);
