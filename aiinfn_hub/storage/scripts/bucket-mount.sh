# bucket-mount: mount the user's buckets with rclone, in the bucket sidecar.
# Environment: AIINFN_BUCKETS (space-separated), AIINFN_MOUNT_ROOT, AIINFN_TOKEN_FILE,
# AIINFN_STS_SCRIPT (the text of sts-credentials.sh) with AIINFN_STS_ENDPOINT, AIINFN_ROLE_ARN,
# AIINFN_SESSION_NAME for it, RCLONE_CONFIG_BUCKETS_* (the remote), AIINFN_MOUNT_OPTIONS.
# A bucket that cannot be mounted gets MOUNT-FAILED.txt in its folder and a line
# "aiinfn-bucket: FAILED <bucket>: <why>" in this container's log (the spawner shows it on the
# progress page); the server starts anyway.
set -u
root=${AIINFN_MOUNT_ROOT:?}
work=$(mktemp -d)
printf '%s\n' "${AIINFN_STS_SCRIPT:?}" > "$work/sts-credentials.sh"
printf '[default]\ncredential_process = sh %s\n' "$work/sts-credentials.sh" > "$work/aws-config"
export AWS_CONFIG_FILE="$work/aws-config" AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_SDK_LOAD_CONFIG=1
note() {
  mkdir -p "$root/$1"
  printf 'Your bucket %s could not be mounted here: %s\nRestart your server to try again; if it keeps failing, tell the platform administrators.\n' "$1" "$2" > "$root/$1/MOUNT-FAILED.txt"
  echo "aiinfn-bucket: FAILED $1: $2"
}
# the hub writes the token Secret at spawn; give the kubelet a moment to project it
i=0
while [ ! -s "${AIINFN_TOKEN_FILE:?}" ] && [ "$i" -lt "${AIINFN_TOKEN_WAIT:-20}" ]; do sleep 1; i=$((i + 1)); done
mounted=""
for bucket in $AIINFN_BUCKETS; do
  dir="$root/$bucket"
  mkdir -p "$dir"
  if [ ! -s "$AIINFN_TOKEN_FILE" ]; then
    note "$bucket" "no IAM token is available for your account (log out of the hub, log in again, then restart the server)"
    continue
  fi
  if ! err=$(rclone lsf --max-depth 1 "buckets:$bucket" 2>&1 >/dev/null); then
    note "$bucket" "the object store refused access ($(printf '%s' "$err" | tail -n 1 | cut -c1-200))"
    continue
  fi
  rm -f "$dir/MOUNT-FAILED.txt"
  # shellcheck disable=SC2086
  if rclone mount "buckets:$bucket" "$dir" --daemon --allow-other ${AIINFN_MOUNT_OPTIONS:-}; then
    mounted="$mounted $bucket"
    echo "aiinfn-bucket: mounted $bucket at $dir"
  else
    note "$bucket" "rclone mount failed (see the bucket-mount container's log)"
  fi
done
unmount() {
  for bucket in $mounted; do fusermount3 -u "$root/$bucket" 2>/dev/null || fusermount -u "$root/$bucket" 2>/dev/null || umount "$root/$bucket"; done
  exit 0
}
trap unmount TERM INT
while :; do sleep 3600 & wait $!; done
