-- Scoring with a released bundle (`modelyard score`): one row per image scored, what the
-- drift job bins beside device telemetry, and each image's latest score per policy.

CREATE TABLE verify_ai_inferences (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bundle_id      uuid NOT NULL REFERENCES verify_ai_model_bundles (id),
    model_version  text NOT NULL,                      -- policy/vN
    image_sha256   char(64) NOT NULL CHECK (image_sha256 ~ '^[0-9a-f]{64}$'),
    sample_id      uuid REFERENCES verify_ai_ml_samples (id) ON DELETE SET NULL,
    source         text NOT NULL,                      -- the file, or dataset:image_path
    raw_score      double precision NOT NULL,
    score          double precision NOT NULL,
    decision       boolean NOT NULL,
    threshold      double precision NOT NULL,
    outputs        jsonb NOT NULL,                     -- boxes of a detector, and the rest
    -- what telemetry bins per image, so the drift job sums both alike
    confidence     double precision NOT NULL,
    brightness     double precision NOT NULL,
    contrast       double precision NOT NULL,
    blur           double precision NOT NULL,
    detections     integer CHECK (detections >= 0),   -- detectors only
    scores         double precision[] NOT NULL DEFAULT '{}',
    predicted      text[] NOT NULL DEFAULT '{}',
    latency_ms     double precision NOT NULL CHECK (latency_ms >= 0),
    scored_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX verify_ai_inferences_time ON verify_ai_inferences (scored_at, bundle_id);
CREATE INDEX verify_ai_inferences_bundle ON verify_ai_inferences (bundle_id, scored_at);
CREATE INDEX verify_ai_inferences_sample ON verify_ai_inferences (sample_id) WHERE sample_id IS NOT NULL;

CREATE TABLE verify_ai_image_scores (
    image_sha256   char(64) NOT NULL,
    policy_id      text NOT NULL,
    inference_id   bigint NOT NULL REFERENCES verify_ai_inferences (id) ON DELETE CASCADE,
    bundle_id      uuid NOT NULL REFERENCES verify_ai_model_bundles (id),
    model_version  text NOT NULL,
    score          double precision NOT NULL,
    decision       boolean NOT NULL,
    scored_at      timestamptz NOT NULL,
    PRIMARY KEY (image_sha256, policy_id)
);
