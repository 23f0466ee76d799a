-- DEV ONLY (also used by deploy/compose). Literal passwords below are development values.
-- One owner role that runs migrations, one login role per service with DML only.
CREATE ROLE medal_migrate LOGIN PASSWORD 'dev-migrate-pg';
CREATE DATABASE medal OWNER medal_migrate;
CREATE ROLE medal_ingest LOGIN PASSWORD 'dev-ingest-pg';
CREATE ROLE medal_annotation LOGIN PASSWORD 'dev-annotation-pg';
CREATE ROLE medal_trainer LOGIN PASSWORD 'dev-trainer-pg';
CREATE ROLE medal_query LOGIN PASSWORD 'dev-query-pg';
CREATE ROLE medal_inference LOGIN PASSWORD 'dev-inference-pg';
REVOKE ALL ON DATABASE medal FROM PUBLIC;
GRANT CONNECT ON DATABASE medal
  TO medal_ingest, medal_annotation, medal_trainer, medal_query, medal_inference;
\connect medal
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public
  TO medal_ingest, medal_annotation, medal_trainer, medal_query, medal_inference;
-- Tables are created by medal_migrate; per-table grants (which service owns which table)
-- belong in the migrations. These defaults only let the service roles read and write rows.
ALTER DEFAULT PRIVILEGES FOR ROLE medal_migrate IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES
  TO medal_ingest, medal_annotation, medal_trainer, medal_query, medal_inference;
ALTER DEFAULT PRIVILEGES FOR ROLE medal_migrate IN SCHEMA public
  GRANT USAGE, SELECT ON SEQUENCES
  TO medal_ingest, medal_annotation, medal_trainer, medal_query, medal_inference;
-- KEDA scales the trainer workers on their member jobs. It logs in as medal_keda, which can read
-- no table: it may only call medal_trainer_backlog(), which counts the queued and running rows of
-- trainer_jobs (a number, nothing about any patient). The function runs with its owner's rights
-- (medal_migrate, which creates the table in the migrations); plpgsql resolves the table when it is
-- called, so this works before the first `medal migrate`. Production: the same statements, by the DBA.
CREATE ROLE medal_keda LOGIN PASSWORD 'dev-keda-pg';
ALTER ROLE medal_keda SET default_transaction_read_only = on;
GRANT CONNECT ON DATABASE medal TO medal_keda;
GRANT USAGE ON SCHEMA public TO medal_keda;
CREATE FUNCTION public.medal_trainer_backlog() RETURNS bigint
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$ BEGIN RETURN (SELECT count(*) FROM public.trainer_jobs WHERE state IN ('queued', 'running')); END $$;
ALTER FUNCTION public.medal_trainer_backlog() OWNER TO medal_migrate;
REVOKE ALL ON FUNCTION public.medal_trainer_backlog() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.medal_trainer_backlog() TO medal_keda;
