# bucket-mount: mount the user's buckets with rclone, in the bucket sidecar.
# Environment: AIINFN_BUCKETS (space-separated), AIINFN_MOUNT_ROOT, AIINFN_TOKEN_FILE,
# AIINFN_STS_SCRIPT (the text of sts-credentials.sh) with AIINFN_STS_ENDPOINT, AIINFN_ROLE_ARN,
# AIINFN_SESSION_NAME for it, RCLONE_CONFIG_BUCKETS_* (the remote), AIINFN_MOUNT_OPTIONS.
# A bucket that cannot be mounted gets MOUNT-FAILED.txt in its folder and a line
# "aiinfn-bucket: FAILED <bucket>: <why>" in this container's log (the spawner shows it on the
# progress page); the server starts anyway.
#
# This container runs as root, privileged, and the mount root is the emptyDir the notebook
# container also sees. The notebook mounts it read-only, so its user can never plant or swap an
# entry here; even so nothing found here is trusted (a planted symlink would make root mount
# over, or write to, a path of the user's choosing). The root must be a plain folder of ours
# (made 0755 at once, closing the emptyDir's 0777); a mount point must be a plain folder of ours
# right below it (not a link, on the root's device, resolved path <root>/<bucket>), checked when
# made and again right before "rclone mount". A restart of this container is a new run: a FUSE
# mount left at a mount point (stale once its rclone died) is detached, then checked the same way.
# Anything else is refused with the log line; nothing is written through it.
set -u
set -f # bucket names are words, never patterns
me=$(id -u)
root=${AIINFN_MOUNT_ROOT:?}
work=$(mktemp -d)
printf '%s\n' "${AIINFN_STS_SCRIPT:?}" > "$work/sts-credentials.sh"
printf '[default]\ncredential_process = sh %s\n' "$work/sts-credentials.sh" > "$work/aws-config"
export AWS_CONFIG_FILE="$work/aws-config" AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_SDK_LOAD_CONFIG=1
failed() {
  echo "aiinfn-bucket: FAILED $1: $2"
}
# the device of folder $1 when it is a plain folder (not a link) owned by us; fails otherwise
own_folder_device() {
  [ ! -L "$1" ] && [ -d "$1" ] || return 1
  # shellcheck disable=SC2046
  set -- $(stat -c '%u %d' "$1" 2>/dev/null)
  [ "${1:-}" = "$me" ] && [ -n "${2:-}" ] && echo "$2"
}
# the file system types mounted exactly at $1, from this container's mount table
mounted_at() {
  awk -v p="$1" '{
    m = $5; gsub(/\\040/, " ", m); gsub(/\\011/, "\t", m); gsub(/\\012/, "\n", m); gsub(/\\134/, "\\", m)
    for (i = 7; i < NF && $i != "-"; i++) continue
    if (m == p) print $(i + 1)
  }' /proc/self/mountinfo
}
# why the mount point of bucket $1 cannot be used; nothing when it is a plain folder of ours
unusable() {
  point="$real/$1"
  device=$(own_folder_device "$point") || {
    echo "its mount point is not a plain folder made by the sidecar (a link or another file is in its place), so it was not used"
    return
  }
  [ "$device" = "$root_device" ] || { echo "another file system is mounted at its mount point"; return; }
  [ "$(cd -P "$point" 2>/dev/null && pwd -P)" = "$point" ] || echo "its mount point leads out of the mount root"
}
# detach FUSE mounts left at bucket $1's mount point by an earlier run, make it if missing, check
prepare() {
  point="$real/$1"
  tries=0
  while types=$(mounted_at "$point") && [ -n "$types" ]; do
    if printf '%s\n' "$types" | grep -qv '^fuse'; then
      echo "something other than a bucket is mounted at its mount point"
      return
    fi
    if [ "$tries" -ge 5 ]; then
      echo "an earlier mount at its mount point could not be detached"
      return
    fi
    fusermount3 -u -z "$point" 2>/dev/null || fusermount -u -z "$point" 2>/dev/null || umount -l "$point" 2>/dev/null
    tries=$((tries + 1))
  done
  mkdir -m 0755 "$point" 2>/dev/null # never -p: it fails on anything already there
  unusable "$1"
}
# the note in bucket $1's folder (only while it is still a plain folder of ours), and the log line
note() {
  if [ -z "$(unusable "$1")" ]; then
    rm -f "$real/$1/MOUNT-FAILED.txt"
    (
      set -C
      printf 'Your bucket %s could not be mounted here: %s\nRestart your server to try again; if it keeps failing, tell the platform administrators.\n' "$1" "$2" > "$real/$1/MOUNT-FAILED.txt"
    ) 2>/dev/null
  fi
  failed "$1" "$2"
}
# why listing a bucket failed, from rclone's exit code $1 and its messages $2: the bucket does
# not exist (exit code 3, "directory not found", which is what S3's NoSuchBucket becomes), the
# token was refused (by STS: our credential_process failed; or by S3: 403 AccessDenied), or
# anything else (then rclone's last error, which names no secret)
refusal() {
  last=$(printf '%s' "$2" | grep -v '^[[:space:]]*$' | grep -v '^caused by:' | tail -n 1 | cut -c1-200)
  case $2 in
    *NoSuchBucket* | *"directory not found"*) not_found=1 ;;
    *) [ "$1" = 3 ] && not_found=1 || not_found=0 ;;
  esac
  if [ "$not_found" = 1 ]; then
    echo "it does not exist on the object store (not found): ask the platform administrators to create it, or to correct its name in the platform's configuration"
  elif printf '%s' "$2" | grep -q 'credential_process'; then
    why=$(printf '%s' "$2" | grep -m 1 -e 'STS endpoint' -e 'no IAM token' | cut -c1-200)
    echo "access denied: the object store's token service refused your IAM token${why:+ ($why)}: log out of the hub, log in again, then restart the server"
  elif printf '%s' "$2" | grep -q -e 'AccessDenied' -e 'status code: 403' -e 'InvalidAccessKeyId' -e 'SignatureDoesNotMatch' -e 'ExpiredToken' -e 'InvalidToken'; then
    echo "access denied: the object store refused your IAM token for this bucket: if you should have access, ask the platform administrators to grant it"
  else
    echo "the object store could not be listed ($last)"
  fi
}
valid_name() {
  case $1 in
    *[!a-z0-9.-]* | *..* | [.-]* | *[.-] | ?) return 1 ;;
  esac
  [ -n "$1" ]
}
mounted=""
unmount() {
  for bucket in $mounted; do
    fusermount3 -u "$real/$bucket" 2>/dev/null || fusermount -u "$real/$bucket" 2>/dev/null || umount "$real/$bucket"
  done
  exit 0
}
trap unmount TERM INT

mkdir -m 0755 "$root" 2>/dev/null # the emptyDir is there in Kubernetes; local runs may lack it
if root_device=$(own_folder_device "$root") && real=$(cd -P "$root" && pwd -P) && chmod 0755 "$real"; then
  # the hub writes the token Secret at spawn; give the kubelet a moment to project it
  i=0
  while [ ! -s "${AIINFN_TOKEN_FILE:?}" ] && [ "$i" -lt "${AIINFN_TOKEN_WAIT:-20}" ]; do sleep 1; i=$((i + 1)); done
  for bucket in $AIINFN_BUCKETS; do
    if ! valid_name "$bucket"; then
      failed "$bucket" "not a valid bucket name"
      continue
    fi
    why=$(prepare "$bucket")
    if [ -n "$why" ]; then
      failed "$bucket" "$why"
      continue
    fi
    if [ ! -s "$AIINFN_TOKEN_FILE" ]; then
      note "$bucket" "no IAM token is available for your account (log out of the hub, log in again, then restart the server)"
      continue
    fi
    err=$(rclone lsf --max-depth 1 "buckets:$bucket" 2>&1 >/dev/null)
    code=$?
    if [ "$code" != 0 ]; then
      note "$bucket" "$(refusal "$code" "$err")"
      continue
    fi
    # the listing can take long: check the mount point again right before mounting on it
    why=$(unusable "$bucket")
    if [ -n "$why" ]; then
      failed "$bucket" "$why"
      continue
    fi
    rm -f "$real/$bucket/MOUNT-FAILED.txt"
    # shellcheck disable=SC2086
    if rclone mount "buckets:$bucket" "$real/$bucket" --daemon --allow-other ${AIINFN_MOUNT_OPTIONS:-}; then
      mounted="$mounted $bucket"
      echo "aiinfn-bucket: mounted $bucket at $real/$bucket"
    else
      note "$bucket" "rclone mount failed (see the bucket-mount container's log)"
    fi
  done
else
  for bucket in $AIINFN_BUCKETS; do
    failed "$bucket" "the sidecar's mount root $root is not a plain folder of its own, so nothing was mounted"
  done
fi
while :; do sleep 3600 & wait $!; done
