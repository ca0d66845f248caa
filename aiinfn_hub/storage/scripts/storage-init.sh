# storage-init: create users' homes and projects' folders on the platform file system.
# Arguments: one "path:uid:gid:mode" per folder, parents before children. A folder that exists
# is left exactly as it is (data, owner and mode untouched). A symbolic link where a folder (or
# its parent) should be is refused, never followed. Runs as root with CHOWN/FOWNER/FSETID/
# DAC_OVERRIDE only, in an init container: the hub itself needs no privilege.
set -eu
fail() { echo "storage-init: $*" >&2; exit 1; }
for spec in "$@"; do
  path=${spec%%:*}
  rest=${spec#*:}
  owner=${rest%:*}
  mode=${rest##*:}
  parent=$(dirname "$path")
  [ -L "$parent" ] && fail "$parent is a symbolic link: refusing to follow it (an administrator must replace it with a folder)"
  [ -d "$parent" ] || fail "$parent does not exist: the export is not laid out as configured"
  [ -L "$path" ] && fail "$path is a symbolic link: refusing to follow it (an administrator must replace it with a folder)"
  if [ -e "$path" ]; then
    [ -d "$path" ] || fail "$path exists but is not a folder"
    echo "storage-init: $path exists, left as it is"
    continue
  fi
  # plain mkdir fails if anything appeared at $path meanwhile, and -h never follows a link
  mkdir "$path" || fail "cannot create $path"
  chown -h "$owner" "$path"
  chmod "$mode" "$path"
  echo "storage-init: created $path ($owner, mode $mode)"
done
