-- Training jobs and trained models.

CREATE TABLE verify_ai_ml_jobs (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    dataset_id    uuid REFERENCES verify_ai_ml_datasets (id),
    kind          text NOT NULL,
    status        text NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    progress      real NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 1),
    logs          text NOT NULL DEFAULT '',
    metrics       jsonb NOT NULL DEFAULT '{}'::jsonb,
    mlflow_run_id text,
    error         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    CONSTRAINT failed_has_error CHECK (status <> 'failed' OR error IS NOT NULL)
);

CREATE TABLE verify_ai_ml_models (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    dataset_id           uuid REFERENCES verify_ai_ml_datasets (id),
    job_id               uuid REFERENCES verify_ai_ml_jobs (id),
    base_architecture    text NOT NULL,
    onnx_path            text,
    tflite_path          text,
    coreml_path          text,
    sha256_onnx          char(64) CHECK (sha256_onnx ~ '^[0-9a-f]{64}$'),
    sha256_tflite        char(64) CHECK (sha256_tflite ~ '^[0-9a-f]{64}$'),
    sha256_coreml        char(64) CHECK (sha256_coreml ~ '^[0-9a-f]{64}$'),
    ontology_version     text,
    schema_version       text,
    accuracy             double precision,
    precision_score      double precision,
    recall               double precision,
    f1_score             double precision,
    map50                double precision,
    map50_95             double precision,
    gemini_agreement     double precision,
    inference_time_ms    double precision CHECK (inference_time_ms >= 0),
    mlflow_model_name    text,
    mlflow_model_version text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (mlflow_model_name, mlflow_model_version),
    CONSTRAINT onnx_path_has_sha CHECK (onnx_path IS NULL OR sha256_onnx IS NOT NULL),
    CONSTRAINT tflite_path_has_sha CHECK (tflite_path IS NULL OR sha256_tflite IS NOT NULL),
    CONSTRAINT coreml_path_has_sha CHECK (coreml_path IS NULL OR sha256_coreml IS NOT NULL)
);
