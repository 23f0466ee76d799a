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
