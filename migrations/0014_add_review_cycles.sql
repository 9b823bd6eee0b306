-- Review cycles (`modelyard review cycle`): a model version's scored outputs against the
-- human labels, its metrics kept per model_version so the next version's cycle can say
-- improved / changed / worse / unchanged against the last.

CREATE TABLE verify_ai_review_cycles (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    policy_id       text NOT NULL,
    bundle_id       uuid NOT NULL REFERENCES verify_ai_model_bundles (id),
    bundle_version  integer NOT NULL CHECK (bundle_version >= 1),
    model_version   text NOT NULL,                      -- policy/vN
    labelled        integer NOT NULL CHECK (labelled >= 0),
    metrics         jsonb NOT NULL,                     -- name -> {value, se, n}
    review_set      integer NOT NULL CHECK (review_set >= 0),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX verify_ai_review_cycles_policy ON verify_ai_review_cycles (policy_id, bundle_version, created_at);
