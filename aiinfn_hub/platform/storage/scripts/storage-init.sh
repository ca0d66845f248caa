# storage-init: create users' homes and projects' folders on the platform file system.
# Arguments: one "path:uid:gid:mode[:owned]" per folder, parents before children. A folder that
# exists is left exactly as it is (data, owner and mode untouched); with ":owned" (homes) it must
# already belong to uid, or the start is refused: a home owned by another id is someone else's
# (or the hub's user ids changed, e.g. its database was lost) and an administrator must look.
# A symbolic link where a folder (or its parent) should be is refused, never followed. Runs as
# root with CHOWN/FOWNER/FSETID/DAC_OVERRIDE only, in an init container: the hub itself needs no
# privilege.
set -eu
fail() { echo "storage-init: $*" >&2; exit 1; }
for spec in "$@"; do
  IFS=: read -r path uid gid mode check <<SPEC
$spec
SPEC
  parent=$(dirname "$path")
  [ -L "$parent" ] && fail "$parent is a symbolic link: refusing to follow it (an administrator must replace it with a folder)"
  [ -d "$parent" ] || fail "$parent does not exist: the export is not laid out as configured"
  [ -L "$path" ] && fail "$path is a symbolic link: refusing to follow it (an administrator must replace it with a folder)"
  if [ -e "$path" ]; then
    [ -d "$path" ] || fail "$path exists but is not a folder"
    if [ "${check:-}" = owned ]; then
      found=$(stat -c %u "$path")
      [ "$found" = "$uid" ] || fail "$path belongs to user id $found, but this account runs as $uid: ask the platform administrators to check the folder (if it is yours, they re-own it with: chown -R $uid $path)"
    fi
    echo "storage-init: $path exists, left as it is"
    continue
  fi
  # plain mkdir fails if anything appeared at $path meanwhile, and -h never follows a link
  mkdir "$path" || fail "cannot create $path"
  chown -h "$uid:$gid" "$path"
  chmod "$mode" "$path"
  echo "storage-init: created $path ($uid:$gid, mode $mode)"
done
