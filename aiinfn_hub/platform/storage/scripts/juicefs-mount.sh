# juicefs-mount: mount the project's JuiceFS file system for an offloaded Bunshin job. Runs as a
# native sidecar (an init container that keeps running) so the job's container starts only
# once the mount is up: the startup probe waits for $AIINFN_JUICEFS_ROOT/ready.
# Arguments: folders to create under the mount, "path:uid:gid:mode", parents first (existing
# ones are left as they are; symbolic links are refused: see storage-init.sh).
# Environment: AIINFN_JUICEFS_ROOT (the shared emptyDir; the file system goes on <root>/mnt),
# AIINFN_JUICEFS_CREDENTIALS (the project's Secret: metaurl, meta-password if any),
# AIINFN_JUICEFS_OPTIONS (extra mount flags), AIINFN_FOLDERS_SCRIPT (storage-init.sh's text).
# The password reaches juicefs as META_PASSWORD in this process only, never the pod spec.
set -u
root=${AIINFN_JUICEFS_ROOT:?}
secret=${AIINFN_JUICEFS_CREDENTIALS:?}
mnt="$root/mnt"
rm -f "$root/ready"
fail() { echo "juicefs-mount: $*" >&2; exit 1; }
[ -s "$secret/metaurl" ] || fail "$secret/metaurl is missing: the service did not provide this project's file system"
if [ -s "$secret/meta-password" ]; then
  META_PASSWORD=$(cat "$secret/meta-password")
  export META_PASSWORD
fi
mounted() { [ "$(stat -c %d "$mnt" 2>/dev/null)" != "$(stat -c %d "$root")" ]; }
detach() { fusermount3 -u -z "$mnt" 2>/dev/null || fusermount -u -z "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null; }
mkdir -p "$mnt" 2>/dev/null
# a restart after a crash finds the dead mount of the last run: detach it first
if mounted; then
  detach
  mounted && fail "$mnt is still a mount point and cannot be detached"
fi
# shellcheck disable=SC2086
juicefs mount --no-usage-report ${AIINFN_JUICEFS_OPTIONS:-} "$(cat "$secret/metaurl")" "$mnt" &
pid=$!
# unmount (flushing what was written), then end the client: the kubelet's bind mounts of
# subPaths may keep the FUSE session open after the unmount
stop() {
  juicefs umount "$mnt" 2>/dev/null || fusermount3 -u "$mnt" 2>/dev/null || fusermount -u "$mnt" 2>/dev/null || detach
  kill "$pid" 2>/dev/null
  wait "$pid"
}
trap 'stop; exit 0' TERM INT
while ! mounted; do
  kill -0 "$pid" 2>/dev/null || { wait "$pid"; fail "juicefs mount exited with status $? (see the lines above)"; }
  sleep 0.2
done
# the folders' specs, each prefixed with the mount point, kept as separate arguments
count=$#
while [ "$count" -gt 0 ]; do
  set -- "$@" "$mnt/$1"
  shift
  count=$((count - 1))
done
if ! sh -c "${AIINFN_FOLDERS_SCRIPT:?}" juicefs-folders "$@"; then
  stop
  fail "could not lay out the job's folders (see the lines above)"
fi
touch "$root/ready"
echo "juicefs-mount: mounted at $mnt"
wait "$pid"
echo "juicefs-mount: juicefs exited with status $?" >&2
exit 1
