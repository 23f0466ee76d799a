#!/bin/sh
# DEV ONLY (also used by deploy/compose): bucket, one MinIO user and policy per service.
# Needs MINIO_URL, MINIO_ROOT_USER, MINIO_ROOT_PASSWORD; policies are read from $POLICY_DIR.
set -eu
export MC_CONFIG_DIR="${MC_CONFIG_DIR:-/tmp/.mc}"
bucket="${MEDAL_S3_BUCKET:-medal}"
until mc alias set local "$MINIO_URL" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null 2>&1; do
  echo "waiting for MinIO at $MINIO_URL"; sleep 2
done
mc mb --ignore-existing "local/$bucket"
for svc in ingest annotation trainer query inference; do
  mc admin user add local "$svc" "dev-$svc-s3-secret"
  mc admin policy create local "medal-$svc" "$POLICY_DIR/minio-policy-$svc.json"
  mc admin policy attach local "medal-$svc" --user "$svc" || true  # already attached on re-run
done
echo "MinIO ready: bucket $bucket, users per service"
