-- Policies, datasets, and the legal dataset status transitions.
-- The transition table is the single source of truth: a trigger refuses any other change,
-- whoever issues the UPDATE.

CREATE TABLE verify_ai_policies (
    policy_id     text PRIMARY KEY CHECK (policy_id ~ '^[A-Za-z0-9][A-Za-z0-9._-]*$'),
    name          text NOT NULL,
    provider      text,
    model         text,
    system_prompt text,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE verify_ai_ml_datasets (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    policy_id        text NOT NULL REFERENCES verify_ai_policies (policy_id),
    name             text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]*$'),
    status           text NOT NULL DEFAULT 'collecting'
                     CHECK (status IN ('collecting', 'ready', 'training', 'archived')),
    -- the ontology: the class names a sample's objects may use, in class-id order
    classes          jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(classes) = 'array'),
    ontology_version text NOT NULL DEFAULT '1',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (policy_id, name)
);

CREATE TABLE verify_ai_ml_dataset_transitions (
    from_status text NOT NULL,
    to_status   text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);

INSERT INTO verify_ai_ml_dataset_transitions (from_status, to_status) VALUES
    ('collecting', 'ready'),
    ('collecting', 'archived'),
    ('ready', 'collecting'),
    ('ready', 'training'),
    ('ready', 'archived'),
    ('training', 'ready'),
    ('training', 'archived');

CREATE FUNCTION verify_ai_ml_datasets_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status AND NOT EXISTS (
        SELECT 1 FROM verify_ai_ml_dataset_transitions
        WHERE from_status = OLD.status AND to_status = NEW.status
    ) THEN
        RAISE EXCEPTION 'illegal dataset status transition % -> %', OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TRIGGER verify_ai_ml_datasets_guard
    BEFORE UPDATE ON verify_ai_ml_datasets
    FOR EACH ROW EXECUTE FUNCTION verify_ai_ml_datasets_guard();
